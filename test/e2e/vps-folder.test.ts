import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import * as decoding from 'lib0/decoding'
import { describe, expect, it } from 'vitest'
import { open as openEnvelope, type EnvelopeItem } from '../../dist/blind/blind-envelope.js'
import { unframe } from '../../dist/store/framing.js'
import { kitsyncJson, kitsyncOk, makeHome, makeTempDir, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'
import { filesUnder, uploadedHead, type BlindStoreStatus } from '../helpers/vps-store.js'

/**
 * Issue 22, "Safety": a shared folder's content goes through the VPS's blind store, encrypted.
 * Real processes on loopback: A and B trusted, V an untrusted member (the VPS). A writes files
 * (text and a binary) while B is stopped, uploads them to V and stops; B starts with only V to
 * reach and places the files. V's LevelDB holds no file name nor content in plaintext, and a
 * folder A keeps local-only never reaches V, not even encrypted (its entries, decrypted here
 * with the workspace key, carry none of it).
 */

const { peer, invite, forget } = devicesOfTest()
const WAIT = 30_000
const MARK = `vf${process.pid}q`

interface Status {
  network?: {
    blindStore?: BlindStoreStatus
  }
}

const status = (home: string): Promise<Status> => kitsyncJson<Status>(home, ['status', '--json'])

/** The VPS store's head once the device's session with it is live, has nothing pending and has applied it all. */
async function uploaded(home: string, vHome: string, vId: string): Promise<number> {
  return waitUntil(
    async () => {
      const [mine, store] = [(await status(home)).network?.blindStore, (await status(vHome)).network?.blindStore]
      return uploadedHead(mine, store, vId)
    },
    WAIT,
    'everything uploaded to the VPS',
  )
}

interface FolderStatus {
  files: { path: string; state: string }[]
}

async function captured(home: string, folder: string, paths: string[]): Promise<void> {
  await waitUntil(
    async () => {
      const files = (await kitsyncJson<FolderStatus>(home, ['folder', 'status', folder, '--json'])).files
      return paths.every((p) => files.some((f) => f.path === p && f.state === 'synced')) ? true : undefined
    },
    WAIT,
    `${paths.join(', ')} captured in ${folder}`,
  )
}

/** Every item of every entry and snapshot in the VPS's store, decrypted with the workspace keys. */
async function storeItems(vHome: string, workspaceId: string, keys: Record<string, string>): Promise<EnvelopeItem[]> {
  const db = new ClassicLevel<string, Uint8Array>(join(vHome, 'store'), { valueEncoding: 'view' })
  const items: EnvelopeItem[] = []
  try {
    for await (const [key, raw] of db.iterator({ gte: 'b!', lt: 'b"' })) {
      if (key === 'b!meta') continue
      const snapshot = key === 'b!snap'
      const payload = unframe(raw) as Uint8Array
      const d = decoding.createDecoder(payload)
      if (snapshot) decoding.readVarUint(d) // covers
      const epoch = decoding.readVarUint(d)
      const hex = keys[String(epoch)] as string
      const ctx = { workspaceId, epoch, kind: snapshot ? ('snapshot' as const) : ('entry' as const) }
      items.push(...(await openEnvelope(new Uint8Array(Buffer.from(hex, 'hex')), ctx, payload.subarray(d.pos))))
    }
  } finally {
    await db.close()
  }
  return items
}

describe('a shared folder through the VPS blind store', () => {
  it('B, reaching only the VPS, gets the files A wrote while B was away; the VPS holds them encrypted; a local-only folder stays home', async () => {
    const [ha, hb, hv] = [await makeHome(), await makeHome(), await makeHome()]
    const pa = await peer(ha, NET)
    await kitsyncOk(hv, ['join', await invite(ha, ['--untrusted']), '--name', 'vps', ...NET])
    const pv = await peer(hv, NET)
    const vAddress = (pv.started as typeof pv.started & { listen: string[] }).listen.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/')) as string
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', ...NET])
    const bArgs = [...NET, '--bootstrap', vAddress]
    let pb = await peer(hb, bArgs)

    const [da, db, dp] = [join(await makeTempDir('ks-vfa-'), 'sim'), join(await makeTempDir('ks-vfb-'), 'sim'), join(await makeTempDir('ks-vfp-'), 'priv')]
    await kitsyncOk(ha, ['items', 'add', '_folder.priv', '--local-only', '--json'])
    await kitsyncOk(ha, ['folder', 'add', da, '--name', 'sim', '--include', '*.txt', '--include', '*.bin', '--json'])
    await kitsyncOk(ha, ['folder', 'add', dp, '--name', 'priv', '--json'])
    await waitUntil(
      async () => ((await kitsyncJson<{ name: string }[]>(hb, ['folder', 'list', '--json'])).some((f) => f.name === 'sim') ? true : undefined),
      WAIT,
      'the folder on B',
    )
    await kitsyncOk(hb, ['folder', 'add', db, '--name', 'sim', '--json'])
    await uploaded(hb, hv, pv.started.deviceId)

    // B away: A writes, uploads to the VPS, and goes away too.
    await stopProc(pb.proc)
    forget(pb)
    const textName = `notes-${MARK}.txt`
    const text = `first line ${MARK}\nsecond line\n`
    const binary = Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0]), Buffer.from(`binary-${MARK}`), Buffer.from([0, 0, 7])])
    const hash = createHash('sha256').update(binary).digest('hex')
    await mkdir(join(da, 'sub'), { recursive: true })
    await writeFile(join(da, textName), text)
    await writeFile(join(da, 'sub', 'data.bin'), binary)
    await writeFile(join(dp, 'secret.txt'), `private-${MARK}\n`)
    await captured(ha, 'sim', [textName, 'sub/data.bin'])
    await captured(ha, 'priv', ['secret.txt'])
    await uploaded(ha, hv, pv.started.deviceId)
    await stopProc(pa.proc)
    forget(pa)

    pb = await peer(hb, bArgs)
    await waitUntil(async () => ((await readFile(join(db, textName), 'utf8').catch(() => undefined)) === text ? true : undefined), WAIT, 'the text file on B')
    await waitUntil(
      async () => ((await readFile(join(db, 'sub', 'data.bin')).catch(() => undefined))?.equals(binary) === true ? true : undefined),
      WAIT,
      'the binary file on B',
    )
    expect(await readdir(db)).not.toContain('secret.txt')

    // What the VPS holds, read with the workspace key: the folder's units and its blob, nothing of the local-only folder.
    const keys = (JSON.parse(await readFile(join(ha, 'keys.json'), 'utf8')) as { keys: Record<string, string> }).keys
    await stopProc(pv.proc)
    forget(pv)
    const items = await storeItems(hv, pa.started.workspaceId, keys)
    expect(items.some((i) => i.kind === 'unit' && i.collection === '_folder.sim')).toBe(true)
    expect(items.some((i) => i.kind === 'blob' && i.hash === hash && Buffer.from(i.bytes).equals(binary))).toBe(true)
    for (const i of items) {
      if (i.kind !== 'blob') expect(i.collection).not.toBe('_folder.priv')
      expect(Buffer.from(i.kind === 'blob' ? i.bytes : i.update).includes(`private-${MARK}`)).toBe(false)
    }

    // The VPS's files and every value of its LevelDB: no file name, no content, in plaintext.
    for (const f of await filesUnder(hv)) {
      const raw = (await readFile(f)).toString('latin1')
      expect(raw.includes(MARK), `${f} holds a marker`).toBe(false)
    }
    const vdb = new ClassicLevel<string, Uint8Array>(join(hv, 'store'), { valueEncoding: 'view' })
    let values = 0
    try {
      for await (const [key, value] of vdb.iterator()) {
        values++
        expect(key.includes(MARK) || Buffer.from(value).toString('latin1').includes(MARK), `store value ${key} holds a marker`).toBe(false)
      }
    } finally {
      await vdb.close()
    }
    expect(values).toBeGreaterThan(0)
  })
})
