import { appendFileSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { RecordCollection } from '../../src/core/record-collection.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { WriteAheadFile } from '../../src/store/wal.js'

const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})
async function home(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ks-wal-'))
  dirs.push(d)
  return d
}

/** Run `hook` (and wait for it) before each LevelDB batch of the workspace's store. */
function beforeEachBatch(ws: LocalWorkspace, hook: () => void | Promise<void>): void {
  const db = ws.store.db as unknown as { batch: (...args: unknown[]) => Promise<void> }
  const batch = db.batch.bind(db)
  db.batch = async (...args) => {
    await hook()
    return batch(...args)
  }
}

/** After a flush the write-ahead file is empty (LevelDB has it all); the collection reloads whole. */
async function expectAllInLevelDb(h: string, ws: LocalWorkspace, collection: string, records: number): Promise<void> {
  await ws.flush()
  expect(statSync(join(h, 'store.wal')).size).toBe(0)
  await ws.close()
  const reopened = await LocalWorkspace.open({ home: h })
  expect(Object.keys(await reopened.getAll(collection))).toHaveLength(records)
  await reopened.close()
}

describe('write-ahead file', () => {
  it('reads back whole records and drops a torn one at the end', async () => {
    const path = join(await home(), 'x.wal')
    const { wal } = WriteAheadFile.open(path)
    wal.append('notes', new Uint8Array([1, 2, 3]))
    wal.append('_members', new Uint8Array([4]))
    wal.close() // two outstanding records: the file keeps them
    appendFileSync(path, Buffer.from([0, 0, 0, 9, 1, 2])) // a write cut short by a crash
    const { wal: again, entries } = WriteAheadFile.open(path)
    expect(entries).toEqual([
      { collection: 'notes', update: new Uint8Array([1, 2, 3]) },
      { collection: '_members', update: new Uint8Array([4]) },
    ])
    again.clear()
    expect(statSync(path).size).toBe(0)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    again.close()
  })

  it('a write acknowledged before LevelDB had it is there after a crash', async () => {
    const h = await home()
    const ws = await LocalWorkspace.open({ home: h })
    await ws.set('notes', 'kept', { v: 1 })
    await ws.flush()
    // From here LevelDB never completes a write, as if the process died before it could.
    ;(ws.store.db as unknown as { batch: () => Promise<void> }).batch = () => new Promise<void>(() => undefined)
    await ws.set('notes', 'acked', { v: 2 }) // resolves: the write-ahead file has it
    expect(readFileSync(join(h, 'store.wal')).byteLength).toBeGreaterThan(0)
    await ws.store.db.close() // the "crash": no flush, no compaction
    const reopened = await LocalWorkspace.open({ home: h })
    expect(await reopened.getAll('notes')).toEqual({ kept: { v: 1 }, acked: { v: 2 } })
    // Recovered into LevelDB, so the file is empty again.
    expect(statSync(join(h, 'store.wal')).size).toBe(0)
    await reopened.close()
  })

  it('writes what the file holds to LevelDB a moment later, many updates together, and at once on flush', async () => {
    const h = await home()
    const ws = await LocalWorkspace.open({ home: h })
    await ws.set('notes', 'first', 0)
    await ws.flush()
    let batches = 0
    beforeEachBatch(ws, () => {
      batches++
    })
    // One write per turn of the event loop, as an app typing or a peer relaying makes them.
    for (let i = 0; i < 20; i++) {
      await ws.set('notes', `k${i}`, i)
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(batches).toBeLessThan(10)
    expect(statSync(join(h, 'store.wal')).size).toBeGreaterThan(0)
    await expectAllInLevelDb(h, ws, 'notes', 21)
  })

  it('a copy of a whole collection goes to LevelDB only, and a write after it waits for it', async () => {
    const h = await home()
    const ws = await LocalWorkspace.open({ home: h })
    const source = new RecordCollection('copied', new Y.Doc())
    for (let i = 0; i < 400; i++) source.set(`k${i}`, { pad: 'x'.repeat(1000), i }, 'local')
    const copy = Y.encodeStateAsUpdate(source.doc)
    // LevelDB takes no write until released.
    let release = (): void => undefined
    const gate = new Promise<void>((resolve) => (release = resolve))
    beforeEachBatch(ws, () => gate)
    await ws.adopt('copied', copy)
    let acked = false
    const after = ws.set('copied', 'after', 1).then(() => (acked = true))
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    // The write is in the write-ahead file, the copy is not: the write is not acknowledged
    // before the copy it was made on is durable.
    const walBytes = statSync(join(h, 'store.wal')).size
    expect(walBytes).toBeGreaterThan(0)
    expect(walBytes).toBeLessThan(copy.byteLength / 100)
    expect(acked).toBe(false)
    release()
    await after
    await expectAllInLevelDb(h, ws, 'copied', 401)
  })
})
