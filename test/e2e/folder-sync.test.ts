import { mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { folderCollection } from '../../src/daemon/folder-host.js'
import { FolderTrash } from '../../src/folder/trash.js'
import { kitsync, kitsyncJson, kitsyncOk, makeHome, makeTempDir, startPeer, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest } from '../helpers/devices.js'

/**
 * Issue 22 (design F3): two real peers started through the CLI on loopback, a folder shared
 * with `kitsync folder add` on each, real files written in it. Every wait has a deadline.
 */

const { peer, invite, peers, forget } = devicesOfTest()
const PEER_ARGS = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http-port', '0']
const WAIT = 20_000

interface Pair {
  ha: string
  hb: string
  da: string
  db: string
  pb: RunningPeer
}

type InProcessPeer = Awaited<ReturnType<typeof import('../../dist/index.js').startPeer>>

/** Two paired devices with folder `sim` placed at da (A) and db (B); A runs in this process when `inProcess` is given (a hostile member's store at hand). */
async function pairWithFolder(inProcess?: (p: InProcessPeer) => void): Promise<Pair> {
  const [ha, hb] = [await makeHome(), await makeHome()]
  if (inProcess === undefined) await peer(ha, PEER_ARGS)
  else {
    const { startPeer: startInProcess } = await import('../../dist/index.js')
    inProcess(await startInProcess({ home: ha, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false }))
  }
  await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
  const pb = await peer(hb, PEER_ARGS)
  const da = join(await makeTempDir('ks-fa-'), 'sim')
  const db = join(await makeTempDir('ks-fb-'), 'sim')
  const added = await kitsyncJson<{ name: string; path: string; state: string }>(ha, ['folder', 'add', da, '--name', 'sim', '--exclude', 'out/**', '--json'])
  expect(added).toMatchObject({ name: 'sim', path: da, state: 'watching' })
  // B places the folder once the definition reached it (before that, add would make its own).
  await waitUntil(
    async () => ((await kitsyncJson<{ name: string }[]>(hb, ['folder', 'list', '--json'])).some((f) => f.name === 'sim') ? true : undefined),
    WAIT,
    'the folder on B',
  )
  await kitsyncOk(hb, ['folder', 'add', db, '--name', 'sim', '--json'])
  return { ha, hb, da, db, pb }
}

const contentOf = async (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined)

/** Until the file at `path` holds `text` (undefined: until it is gone). */
function waitFor(path: string, text: string | undefined, what: string): Promise<true> {
  return waitUntil(async () => ((await contentOf(path)) === text ? true : undefined), WAIT, what).catch(async (err: unknown) => {
    if (process.env.FOLDER_DEBUG === '1') console.error('DBG', path, JSON.stringify(await contentOf(path)))
    throw err
  })
}

interface StatusView {
  name: string
  files: { path: string; state: string; conflictCopy?: string }[]
}

describe('shared folders between two peers on loopback', () => {
  it('a file written on A appears on B; edits, a rename and a delete follow; folder status --json says synced', async () => {
    const { ha, hb, da, db } = await pairWithFolder()
    await mkdir(join(da, 'scenarios'), { recursive: true })
    await writeFile(join(da, 'scenarios', 's1.yaml'), 'name: s1\nsteps: 3\n')
    await writeFile(join(da, 'out.bin.txt'), 'regenerable\n')
    await mkdir(join(da, 'out'), { recursive: true })
    await writeFile(join(da, 'out', 'big.txt'), 'excluded\n')
    await waitFor(join(db, 'scenarios', 's1.yaml'), 'name: s1\nsteps: 3\n', 'the new file on B')
    await waitFor(join(db, 'out.bin.txt'), 'regenerable\n', 'the second file on B')
    expect(await contentOf(join(db, 'out', 'big.txt'))).toBeUndefined()

    await writeFile(join(db, 'scenarios', 's1.yaml'), 'name: s1\nsteps: 4\n')
    await waitFor(join(da, 'scenarios', 's1.yaml'), 'name: s1\nsteps: 4\n', 'the edit made on B, on A')

    await rename(join(da, 'out.bin.txt'), join(da, 'renamed.txt'))
    await waitFor(join(db, 'renamed.txt'), 'regenerable\n', 'the rename on B')
    await waitFor(join(db, 'out.bin.txt'), undefined, 'the old name gone on B')

    await rm(join(db, 'renamed.txt'))
    await waitFor(join(da, 'renamed.txt'), undefined, 'the delete on A')
    // On A: the version of s1.yaml that B's edit replaced, and the file B deleted. (writeFile
    // truncates, then writes: on a loaded machine B may capture the empty file between the two,
    // and A then keeps each version it replaced, so s1.yaml can be there twice.)
    const trashed = [...new Set((await new FolderTrash(da).list()).map((t) => `${t.reason} ${t.path}`))].sort()
    expect(trashed).toEqual(['deleted renamed.txt', 'overwritten scenarios/s1.yaml'])

    const status = await kitsyncJson<StatusView>(ha, ['folder', 'status', 'sim', '--json'])
    expect(status.files.find((f) => f.path === 'scenarios/s1.yaml')?.state).toBe('synced')
    expect(status.files.find((f) => f.path === 'out')?.state).toBe('local only')
    const list = await kitsyncJson<{ name: string; files: number; path: string }[]>(hb, ['folder', 'list', '--json'])
    expect(list).toEqual([expect.objectContaining({ name: 'sim', path: db, files: 1 })])
  })

  it('offline edits of different lines are both kept without a conflict copy; JSON that would break keeps a conflict copy', async () => {
    const { ha, hb, da, db, pb } = await pairWithFolder()
    await writeFile(join(da, 'notes.txt'), 'one\ntwo\nthree\nfour\n')
    await writeFile(join(da, 'p.json'), '{"a": 1}\n')
    await waitFor(join(db, 'notes.txt'), 'one\ntwo\nthree\nfour\n', 'notes on B')
    await waitFor(join(db, 'p.json'), '{"a": 1}\n', 'p.json on B')
    // B goes offline; both edit.
    await stopProc(pb.proc)
    forget(pb)
    await writeFile(join(db, 'notes.txt'), 'one\ntwo\nthree\nFOUR from b\n')
    await writeFile(join(db, 'p.json'), '{"a": "x"}\n')
    await writeFile(join(da, 'notes.txt'), 'ONE from a\ntwo\nthree\nfour\n')
    await writeFile(join(da, 'p.json'), '{"a": true}\n')
    await waitUntil(
      async () => ((await kitsyncJson<StatusView>(ha, ['folder', 'status', 'sim', '--json'])).files.every((f) => f.state === 'synced') ? true : undefined),
      WAIT,
      'A captured its edits',
    )
    await startPeer(hb, { args: PEER_ARGS }).then((p) => peers.push(p))
    const merged = 'ONE from a\ntwo\nthree\nFOUR from b\n'
    await waitFor(join(da, 'notes.txt'), merged, 'the merged notes on A')
    await waitFor(join(db, 'notes.txt'), merged, 'the merged notes on B')
    // B's version is captured when its peer starts again, after A's: it is the latest.
    await waitFor(join(da, 'p.json'), '{"a": "x"}\n', 'the latest JSON on A')
    await waitFor(join(db, 'p.json'), '{"a": "x"}\n', 'the latest JSON on B')
    // A name starting with a dot is the temp file of a copy being written (atomic write), not a copy.
    const copies = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => n.includes('.conflict-') && !n.startsWith('.'))
    await waitUntil(async () => ((await copies(da)).length === 1 && (await copies(db)).length === 1 ? true : undefined), WAIT, 'one conflict copy on each')
    const [copy] = await copies(db)
    expect(await contentOf(join(db, copy as string))).toBe('{"a": true}\n')
    expect((await copies(da)).filter((n) => n.startsWith('notes'))).toEqual([])
    const status = await kitsyncJson<StatusView>(hb, ['folder', 'status', 'sim', '--json'])
    expect(status.files.find((f) => f.path === 'p.json')).toMatchObject({ state: 'conflict', conflictCopy: copy })
  })

  it('an edit made offline wins over a delete', async () => {
    const { da, db, pb, hb } = await pairWithFolder()
    await writeFile(join(da, 'd.txt'), 'v1\n')
    await waitFor(join(db, 'd.txt'), 'v1\n', 'd.txt on B')
    await stopProc(pb.proc)
    forget(pb)
    await rm(join(da, 'd.txt'))
    await writeFile(join(db, 'd.txt'), 'v2 edited offline\n')
    await startPeer(hb, { args: PEER_ARGS }).then((p) => peers.push(p))
    await waitFor(join(da, 'd.txt'), 'v2 edited offline\n', 'the edit back on A')
    expect(await contentOf(join(db, 'd.txt'))).toBe('v2 edited offline\n')
  })

  it('three devices: a file made on C reaches A and B, and an edit on B reaches A and C', async () => {
    const { ha, da, db } = await pairWithFolder()
    const hc = await makeHome()
    await kitsyncOk(hc, ['join', await invite(ha), '--name', 'c', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    await peer(hc, PEER_ARGS)
    const dc = join(await makeTempDir('ks-fc-'), 'sim')
    await waitUntil(
      async () => ((await kitsyncJson<{ name: string }[]>(hc, ['folder', 'list', '--json'])).some((f) => f.name === 'sim') ? true : undefined),
      WAIT,
      'the folder on C',
    )
    await kitsyncOk(hc, ['folder', 'add', dc, '--name', 'sim', '--json'])
    await writeFile(join(dc, 'from-c.md'), '# made on C\n')
    await waitFor(join(da, 'from-c.md'), '# made on C\n', "C's file on A")
    await waitFor(join(db, 'from-c.md'), '# made on C\n', "C's file on B")
    await writeFile(join(db, 'from-c.md'), '# made on C\nedited on B\n')
    await waitFor(join(da, 'from-c.md'), '# made on C\nedited on B\n', "B's edit on A")
    await waitFor(join(dc, 'from-c.md'), '# made on C\nedited on B\n', "B's edit on C")
    // C stops syncing the folder: its files stay, it is "not here", and new files no longer come.
    expect(await kitsyncJson(hc, ['folder', 'remove', 'sim', '--json'])).toEqual({ name: 'sim', path: dc })
    expect(await contentOf(join(dc, 'from-c.md'))).toBe('# made on C\nedited on B\n')
    expect(await kitsyncJson(hc, ['folder', 'list', '--json'])).toEqual([expect.objectContaining({ name: 'sim', state: 'not here' })])
    await writeFile(join(da, 'after.txt'), 'after\n')
    await waitFor(join(db, 'after.txt'), 'after\n', 'a new file on B')
    expect(await contentOf(join(dc, 'after.txt'))).toBeUndefined()
    const r = await kitsync(hc, ['folder', 'status', 'sim', '--json'])
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('NOT_FOUND')
  })

  it.each([['../outside.txt'], ['/etc/kitsync-test.txt'], ['.kitsync/trash/x'], ['escape/passwd'], ['a\\b.txt']])(
    'a hostile path from a peer (%j) is refused: nothing outside the folder is touched',
    async (path) => {
      let hostile: InProcessPeer | undefined
      const { hb, db } = await pairWithFolder((p) => (hostile = p))
      const outside = await makeTempDir('ks-out-')
      await writeFile(join(outside, 'passwd'), 'secret')
      await symlink(outside, join(db, 'escape'))
      try {
        // A hostile member: its store writes the record as any device's would, and it syncs.
        const units = (hostile as InProcessPeer).workspace.units
        await units.commit(folderCollection('sim'), [], [{ key: 'hostileaaaaaaaaaaaaaaa', fields: { path, kind: 'dir', size: 0, hash: '', x: false } }])
        await units.commit(
          folderCollection('sim'),
          [],
          [{ key: 'markeraaaaaaaaaaaaaaaa', fields: { path: 'marker', kind: 'dir', size: 0, hash: '', x: false } }],
        )
        // The marker written after it arrives: the hostile record was handled before it.
        await waitUntil(async () => ((await readdir(db)).includes('marker') ? true : undefined), WAIT, 'the marker directory on B')
        expect(await readdir(outside)).toEqual(['passwd'])
        expect(await readFile(join(outside, 'passwd'), 'utf8')).toBe('secret')
        expect((await readdir(db)).sort()).toEqual(['.kitsync', 'escape', 'marker'])
        expect((await kitsync(hb, ['folder', 'status', 'sim', '--json'])).code).toBe(0)
      } finally {
        await hostile?.stop()
      }
    },
  )
})
