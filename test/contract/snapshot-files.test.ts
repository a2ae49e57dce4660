import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { RecordCollection } from '../../src/core/record-collection.js'
import type { WorkspaceInfo } from '../../src/core/workspace-types.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { BinaryLevel } from '../../src/store/level.js'
import { openLevel } from '../../src/store/level.js'
import { SnapshotFiles } from '../../src/store/snapshot-files.js'

/**
 * Large snapshots kept as files beside LevelDB (store/snapshot-files.ts), on a real LevelDB and
 * folder: LevelDB holds a reference, the file the bytes; files nothing refers to are removed at
 * start-up; a missing or damaged file is that collection's DATA_CORRUPTION.
 */

const info: WorkspaceInfo = { home: '/nowhere', deviceId: 'device', workspaceId: 'ws', name: 'test', version: '0' }
const MIN = 4096
const dirs: string[] = []
const open: { db: BinaryLevel; ws: LocalWorkspace }[] = []

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.ws.close().catch(() => undefined)
    if (o.db.status === 'open') await o.db.close()
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function home(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kitsync-files-'))
  dirs.push(dir)
  return dir
}

async function start(dir: string, compaction = {}): Promise<{ db: BinaryLevel; ws: LocalWorkspace; files: () => Promise<string[]> }> {
  const db = await openLevel(join(dir, 'db'))
  const ws = await LocalWorkspace.fromDatabase(db, info, { compaction, snapshotFiles: new SnapshotFiles(join(dir, 'snapshots'), MIN) })
  open.push({ db, ws })
  return { db, ws, files: async () => (await readdir(join(dir, 'snapshots')).catch(() => [] as string[])).sort() }
}

async function stop(s: { db: BinaryLevel; ws: LocalWorkspace }): Promise<void> {
  await s.ws.close()
  await s.db.close()
}

const pad = 'x'.repeat(200)

describe('snapshots kept as files', () => {
  it('keeps a large snapshot in one file that LevelDB refers to, replaces it at each compaction, and reads it back', async () => {
    const dir = await home()
    let s = await start(dir)
    for (let i = 0; i < 50; i++) await s.ws.set('big', `k${i}`, { i, pad })
    await s.ws.set('small', 'k', 1)
    await s.ws.compact()
    const first = await s.files()
    expect(first).toHaveLength(1)
    expect(first[0]).toMatch(/^big\.[0-9a-f]{12}\.snap$/)
    // LevelDB holds a reference (format 2), not the bytes; the small collection stays inline.
    const ref = (await s.db.get('s!big')) as Uint8Array
    expect(ref[0]).toBe(2)
    expect(ref.byteLength).toBeLessThan(200)
    expect(((await s.db.get('s!small')) as Uint8Array)[0]).toBe(1)
    await s.ws.set('big', 'late', { pad })
    await s.ws.compact('big')
    const second = await s.files()
    expect(second).toHaveLength(1)
    expect(second[0]).not.toBe(first[0])
    const expected = await s.ws.getAll('big')
    await stop(s)
    s = await start(dir)
    expect(await s.ws.getAll('big')).toEqual(expected)
    expect(Object.keys(expected)).toHaveLength(51)
  })

  it('removes at start-up the files nothing refers to, and keeps the one that is', async () => {
    const dir = await home()
    let s = await start(dir)
    for (let i = 0; i < 50; i++) await s.ws.set('big', `k${i}`, { i, pad })
    await s.ws.compact()
    const [kept] = await s.files()
    await stop(s)
    // What a process killed after writing a file but before referring to it leaves.
    await writeFile(join(dir, 'snapshots', 'big.0123456789ab.snap'), 'orphan')
    await writeFile(join(dir, 'snapshots', 'gone.0123456789ab.snap'), 'orphan')
    s = await start(dir)
    expect(await s.files()).toEqual([kept])
    expect(Object.keys(await s.ws.getAll('big'))).toHaveLength(50)
  })

  it('a store that holds no collection (it did not load their index) deletes no snapshot file', async () => {
    const dir = await home()
    let s = await start(dir)
    for (let i = 0; i < 50; i++) await s.ws.set('big', `k${i}`, { i, pad })
    await s.ws.compact()
    const files = await s.files()
    expect(files).toHaveLength(1)
    await stop(s)
    // The index is gone (a store opened as new, or another store put in its place).
    await rm(join(dir, 'db'), { recursive: true })
    s = await start(dir)
    expect(await s.files()).toEqual(files)
  })

  it('a missing or damaged file is DATA_CORRUPTION of that collection only, and nothing is deleted', async () => {
    const dir = await home()
    let s = await start(dir)
    for (let i = 0; i < 50; i++) {
      await s.ws.set('a', `k${i}`, { i, pad })
      await s.ws.set('b', `k${i}`, { i, pad })
    }
    await s.ws.set('c', 'k', 1)
    await s.ws.compact()
    const [fileA, fileB] = await s.files()
    await stop(s)
    await writeFile(join(dir, 'snapshots', fileA as string), 'damaged')
    await rm(join(dir, 'snapshots', fileB as string))
    s = await start(dir)
    await expect(s.ws.getAll('a')).rejects.toMatchObject({ code: 'DATA_CORRUPTION' })
    await expect(s.ws.getAll('b')).rejects.toMatchObject({ code: 'DATA_CORRUPTION' })
    expect(await s.ws.getAll('c')).toEqual({ k: 1 })
    expect(((await s.db.get('s!a')) as Uint8Array)[0]).toBe(2)
    expect(await s.files()).toEqual([fileA])
  })

  it("writes a peer's large copy to a file while it is applied; one that does not apply leaves no file", async () => {
    const dir = await home()
    const source = new Y.Doc()
    const records = new RecordCollection('copied', source)
    for (let i = 0; i < 50; i++) records.set(`k${i}`, { i, pad }, 'local')
    const copy = Y.encodeStateAsUpdate(source)
    // A copy is stored as the snapshot when it is over the compaction's minimum.
    let s = await start(dir, { minBytes: 1000 })
    await expect(s.ws.adopt('broken', copy.slice(0, copy.byteLength - 40))).rejects.toMatchObject({ code: 'PROTOCOL_ERROR' })
    expect(await s.files()).toEqual([])
    expect(await s.db.get('s!broken')).toBeUndefined()
    expect(await s.ws.adopt('copied', copy)).toBeDefined()
    await s.ws.flushDoc('copied')
    expect(await s.files()).toHaveLength(1)
    expect(((await s.db.get('s!copied')) as Uint8Array)[0]).toBe(2)
    await stop(s)
    s = await start(dir)
    expect(await s.ws.getAll('copied')).toEqual(records.entries())
  })
})
