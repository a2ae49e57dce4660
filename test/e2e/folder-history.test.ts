import { createHash } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { FileHistory, FileRestoreResult } from '../../src/core/folder-versions.js'
import { kitsync, kitsyncJson, kitsyncOk, makeHome, makeTempDir, startPeer, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest } from '../helpers/devices.js'

/**
 * File history and restore (folder history / folder restore): two real peers started through
 * the CLI on loopback, a folder placed on each, real files written in it. Every wait has a deadline.
 */

const { peer, invite } = devicesOfTest()
const PEER_ARGS = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http-port', '0']
const WAIT = 20_000

async function pairWithFolder(): Promise<{ ha: string; hb: string; da: string; db: string }> {
  const [ha, hb] = [await makeHome(), await makeHome()]
  await peer(ha, PEER_ARGS)
  await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
  await peer(hb, PEER_ARGS)
  const da = join(await makeTempDir('ks-fha-'), 'sim')
  const db = join(await makeTempDir('ks-fhb-'), 'sim')
  await kitsyncOk(ha, ['folder', 'add', da, '--name', 'sim', '--json'])
  await waitUntil(
    async () => ((await kitsyncJson<{ name: string }[]>(hb, ['folder', 'list', '--json'])).some((f) => f.name === 'sim') ? true : undefined),
    WAIT,
    'the folder on B',
  )
  await kitsyncOk(hb, ['folder', 'add', db, '--name', 'sim', '--json'])
  return { ha, hb, da, db }
}

/**
 * Save as editors do, a temp file (excluded: *.tmp) renamed over the file: a writeFile truncates
 * first, and on a loaded machine the empty file between the two can be captured as a version of
 * its own, which would make the version counts below wrong.
 */
async function save(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text)
  await rename(`${path}.tmp`, path)
}

const contentOf = async (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined)
const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

function waitFor(path: string, text: string | undefined, what: string): Promise<true> {
  return waitUntil(async () => ((await contentOf(path)) === text ? true : undefined), WAIT, what)
}

/** Until the file's history on `home` has `count` versions (each capture and each write it learned of is one). */
function historyOf(home: string, path: string, count: number, what: string): Promise<FileHistory> {
  return waitUntil(
    async () => {
      const r = await kitsync(home, ['folder', 'history', 'sim', path, '--json'])
      if (r.code !== 0) {
        if (process.env.FOLDER_DEBUG === '1') console.error('DBG', r.stderr)
        return undefined
      }
      const h = JSON.parse(r.stdout) as FileHistory
      if (process.env.FOLDER_DEBUG === '1') console.error('DBG', JSON.stringify(h.versions.map((v) => v.op)))
      return h.versions.length === count ? h : undefined
    },
    WAIT,
    what,
  )
}

describe('file history and restore between two peers on loopback', () => {
  it('three edits on A are listed on B; B restores the first, A gets it; a restore over an edit not captured is refused, the file untouched', async () => {
    const { ha, hb, da, db } = await pairWithFolder()
    const texts = ['steps: 1\nname: s1\n', 'steps: 2\nname: s1\n', 'steps: 3\nname: s1\nmore: true\n']
    for (const [i, t] of texts.entries()) {
      await save(join(da, 's1.yaml'), t)
      await waitFor(join(db, 's1.yaml'), t, `version ${i + 1} on B`)
    }
    const h = await historyOf(hb, 's1.yaml', 3, 'three versions listed on B')
    expect(h.versions.map((v) => v.op)).toEqual(['modified', 'modified', 'added'])
    expect(h.versions.map((v) => v.hash)).toEqual([sha(texts[2] as string), sha(texts[1] as string), sha(texts[0] as string)])
    expect(h.versions.map((v) => v.size)).toEqual([
      Buffer.byteLength(texts[2] as string),
      Buffer.byteLength(texts[1] as string),
      Buffer.byteLength(texts[0] as string),
    ])
    // Newest first, all written by A (not B), each with its own id.
    expect(h.versions.map((v) => v.time)).toEqual([...h.versions.map((v) => v.time)].sort((a, b) => b - a))
    expect(new Set(h.versions.map((v) => v.deviceTag)).size).toBe(1)
    expect(h.versions.every((v) => v.device !== 'b')).toBe(true)
    expect(new Set(h.versions.map((v) => v.id)).size).toBe(3)

    const first = h.versions[2] as FileHistory['versions'][number]
    const r = await kitsyncJson<FileRestoreResult>(hb, ['folder', 'restore', 'sim', 's1.yaml', '--version', first.id, '--json'])
    expect(r).toMatchObject({ folder: 'sim', path: 's1.yaml', revived: false, restored: { id: first.id, hash: sha(texts[0] as string) } })
    expect(await contentOf(join(db, 's1.yaml'))).toBe(texts[0])
    await waitFor(join(da, 's1.yaml'), texts[0], 'the restored version on A')
    // On A, the restore is a new version, written by B.
    const ha4 = await historyOf(ha, 's1.yaml', 4, "the restore in A's history")
    expect(ha4.versions[0]).toMatchObject({ op: 'modified', device: 'b', hash: sha(texts[0] as string) })

    // An edit the engine has not captured (over the folder's 1 MiB cap, so it never will): refused, nothing written.
    const big = 'x'.repeat(1024 * 1024 + 10) + '\n'
    await save(join(db, 's1.yaml'), big)
    const refused = await kitsync(hb, ['folder', 'restore', 'sim', 's1.yaml', '--version', (h.versions[1] as { id: string }).id])
    expect(refused.code).toBe(10)
    expect(refused.stderr).toMatch(/FILE_CHANGED/)
    expect(await contentOf(join(db, 's1.yaml'))).toBe(big)
    expect(await contentOf(join(da, 's1.yaml'))).toBe(texts[0])
  })

  it('a file deleted on A is restored on B, and comes back on both', async () => {
    const { ha, hb, da, db } = await pairWithFolder()
    await save(join(da, 'notes.txt'), 'keep me\n')
    await waitFor(join(db, 'notes.txt'), 'keep me\n', 'notes on B')
    await rm(join(da, 'notes.txt'))
    await waitFor(join(db, 'notes.txt'), undefined, 'the delete on B')
    const h = await historyOf(hb, 'notes.txt', 2, "the delete in B's history")
    expect(h.versions.map((v) => v.op)).toEqual(['removed', 'added'])
    // The version current a moment before the delete: by time.
    const at = new Date((h.versions[1] as { time: number }).time + 1).toISOString()
    const r = await kitsyncJson<FileRestoreResult>(hb, ['folder', 'restore', 'sim', 'notes.txt', '--at', at, '--json'])
    expect(r).toMatchObject({ revived: true, restored: { op: 'added', hash: sha('keep me\n') } })
    expect(await contentOf(join(db, 'notes.txt'))).toBe('keep me\n')
    await waitFor(join(da, 'notes.txt'), 'keep me\n', 'the restored file on A')
    const ha3 = await historyOf(ha, 'notes.txt', 3, "the restore in A's history")
    expect(ha3.versions[0]).toMatchObject({ op: 'added', device: 'b' })
    // Restoring the removal itself is refused (it has no content).
    const refused = await kitsync(hb, ['folder', 'restore', 'sim', 'notes.txt', '--version', (h.versions[0] as { id: string }).id])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/INVALID_ARGUMENT/)

    // The folder's retention, set on A, applies on both devices from the file's next version.
    const set = await kitsyncJson<{ name: string; history: { off: boolean; count: number; days: number } }>(ha, [
      'folder',
      'set',
      'sim',
      '--history',
      '1',
      '--json',
    ])
    expect(set).toEqual({ name: 'sim', history: { off: false, count: 1, days: 90 } })
    // The setting reaches B as a record of its own, possibly after the next version: each device
    // prunes at the first version it stores once it holds the setting. New versions on A until
    // both hold only the newest.
    const onlyNewest = async (home: string, text: string): Promise<boolean> => {
      const r = await kitsync(home, ['folder', 'history', 'sim', 'notes.txt', '--json'])
      if (r.code !== 0) return false
      const { versions } = JSON.parse(r.stdout) as FileHistory
      return versions.length === 1 && versions[0]?.op === 'modified' && versions[0]?.hash === sha(text)
    }
    let round = 0
    await waitUntil(
      async () => {
        const text = `keep me too, ${++round}\n`
        await save(join(da, 'notes.txt'), text)
        await waitFor(join(db, 'notes.txt'), text, 'the next version on B')
        const settled = await waitUntil(
          async () => ((await onlyNewest(ha, text)) && (await onlyNewest(hb, text)) ? true : undefined),
          3_000,
          'one version',
        ).catch(() => false)
        return settled ? true : undefined
      },
      WAIT * 2,
      'history pruned to the newest version on A and on B',
    )
    expect(round).toBeLessThanOrEqual(5)
  })

  it('a device that joins after the edits gets the versions by history sync, and restores one whose text only A kept', async () => {
    const ha = await makeHome()
    await peer(ha, PEER_ARGS)
    const da = join(await makeTempDir('ks-fha-'), 'sim')
    await kitsyncOk(ha, ['folder', 'add', da, '--name', 'sim', '--json'])
    const texts = ['a: 1\n', 'a: 2\n', 'a: 3\n']
    for (const [i, t] of texts.entries()) {
      await save(join(da, 'c.yaml'), t)
      await historyOf(ha, 'c.yaml', i + 1, `version ${i + 1} captured on A`)
    }
    const hb = await makeHome()
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    await peer(hb, PEER_ARGS)
    await waitUntil(
      async () => ((await kitsyncJson<{ name: string }[]>(hb, ['folder', 'list', '--json'])).some((f) => f.name === 'sim') ? true : undefined),
      WAIT,
      'the folder on B',
    )
    const db = join(await makeTempDir('ks-fhb-'), 'sim')
    await kitsyncOk(hb, ['folder', 'add', db, '--name', 'sim', '--json'])
    await waitFor(join(db, 'c.yaml'), texts[2], 'the file on B')
    const h = await historyOf(hb, 'c.yaml', 3, 'the three versions on B, from A')
    expect(h.versions.map((v) => v.hash)).toEqual([sha(texts[2] as string), sha(texts[1] as string), sha(texts[0] as string)])
    const r = await kitsyncJson<FileRestoreResult>(hb, ['folder', 'restore', 'sim', 'c.yaml', '--version', (h.versions[2] as { id: string }).id, '--json'])
    expect(r.restored.hash).toBe(sha(texts[0] as string))
    expect(await contentOf(join(db, 'c.yaml'))).toBe(texts[0])
    await waitFor(join(da, 'c.yaml'), texts[0], 'the restored version on A')
  })

  it("a file's versions survive kill -9 of the peer right after a capture", async () => {
    const ha = await makeHome()
    const p = await startPeer(ha, { args: PEER_ARGS })
    const da = join(await makeTempDir('ks-fha-'), 'sim')
    await kitsyncOk(ha, ['folder', 'add', da, '--name', 'sim', '--json'])
    for (const [i, t] of ['k: 1\n', 'k: 2\n'].entries()) {
      await save(join(da, 'k.yaml'), t)
      await historyOf(ha, 'k.yaml', i + 1, `version ${i + 1} captured`)
    }
    await stopProc(p.proc, 'SIGKILL')
    await peer(ha, PEER_ARGS)
    const h = await historyOf(ha, 'k.yaml', 2, 'both versions after the restart')
    expect(h.versions.map((v) => v.hash)).toEqual([sha('k: 2\n'), sha('k: 1\n')])
    await save(join(da, 'k.yaml'), 'k: 3\n')
    await historyOf(ha, 'k.yaml', 3, 'a third version after the restart')
    // The first version's text was kept when the second replaced it: restored from this device alone.
    const r = await kitsyncJson<FileRestoreResult>(ha, ['folder', 'restore', 'sim', 'k.yaml', '--version', (h.versions[1] as { id: string }).id, '--json'])
    expect(r.restored.hash).toBe(sha('k: 1\n'))
    expect(await contentOf(join(da, 'k.yaml'))).toBe('k: 1\n')
  })
})
