import { appendFileSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import * as Y from 'yjs'
import { RecordCollection } from '../../src/core/record-collection.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { waitUntil } from '../helpers/cli.js'
import { MAX_IN_FILE, MAX_UNWRITTEN } from '../../src/store/pending-append.js'
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
    // One write per turn of the event loop, as an app typing or a peer relaying makes them. The
    // write-behind delay (10 ms) is a timer, held still here: on a loaded machine 20 turns may
    // take longer than that, and the test is about what the delay gathers, not about the clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      for (let i = 0; i < 20; i++) {
        await ws.set('notes', `k${i}`, i)
        await new Promise((resolve) => setImmediate(resolve))
      }
      // Every write acknowledged from the write-ahead file; none in LevelDB before the delay.
      expect(batches).toBe(0)
      expect(statSync(join(h, 'store.wal')).size).toBeGreaterThan(0)
      vi.advanceTimersByTime(10)
    } finally {
      vi.useRealTimers()
    }
    // The delay over: the twenty go to LevelDB together.
    await waitUntil(async () => (batches > 0 ? true : undefined), 10_000, 'the batch after the delay')
    expect(batches).toBe(1)
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

  it('a writer far ahead of LevelDB goes on while LevelDB writes a batch, and leaves at most about two batches in the file only', async () => {
    const h = await home()
    const ws = await LocalWorkspace.open({ home: h })
    // Each batch of the collection's updates waits at a gate until released, one by one.
    const held: (() => void)[] = []
    let open = false
    const db = ws.store.db as unknown as { batch: (ops: { type: string; key: string }[], ...rest: unknown[]) => Promise<void> }
    const batch = db.batch.bind(db)
    db.batch = async (ops, ...rest) => {
      if (!open && ops.some((op) => op.type === 'put' && op.key.startsWith('u!notes!'))) await new Promise<void>((resolve) => held.push(resolve))
      return batch(ops, ...rest)
    }
    let acked = 0
    const count = 2 * MAX_IN_FILE
    const writer = (async () => {
      for (let i = 0; i < count; i++) {
        await ws.set('notes', `k${i % 100}`, { i })
        acked++
      }
    })()
    /** Until the writer stops: the appends it may make with the batches held are bounded. */
    const stalled = async (): Promise<number> => {
      for (let last = -1; last !== acked;) {
        last = acked
        for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve))
      }
      return acked
    }
    // The first batch is held: the writer queues MAX_UNWRITTEN more, then waits.
    await waitUntil(async () => (held.length === 1 ? true : undefined), 10_000, 'the first batch')
    const first = await stalled()
    expect(held).toHaveLength(1)
    expect(first).toBeGreaterThan(MAX_UNWRITTEN)
    expect(first).toBeLessThanOrEqual(2 * (MAX_UNWRITTEN + 1))
    // Released, the next batch takes the queue and is held in turn: the writer goes on meanwhile
    // (it does not wait until LevelDB has its own append), up to the same bound or the file's (see the next test).
    held.shift()?.()
    await waitUntil(async () => (held.length === 1 ? true : undefined), 10_000, 'the second batch')
    const second = await stalled()
    expect(second - first).toBeGreaterThanOrEqual(Math.min(MAX_UNWRITTEN, MAX_IN_FILE - first) / 2)
    open = true
    held.shift()?.()
    await writer
    await expectAllInLevelDb(h, ws, 'notes', 100)
  })

  it('stays bounded while LevelDB never catches up, and every acknowledged write is there after a crash', async () => {
    const h = await home()
    const ws = await LocalWorkspace.open({ home: h })
    const db = ws.store.db as unknown as { batch: (...args: unknown[]) => Promise<void> }
    const batch = db.batch.bind(db)
    db.batch = async (...args) => {
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
      return batch(...args)
    }
    const wal = ws.store.wal as WriteAheadFile
    let most = 0
    let emptied = 0
    const count = 3 * MAX_IN_FILE
    for (let i = 0; i < count; i++) {
      const before = wal.records
      await ws.set('notes', `k${i}`, { i })
      if (wal.records < before) emptied++
      most = Math.max(most, wal.records)
    }
    // Without the bound the file would hold every record written (LevelDB always has a batch under way).
    expect(most).toBeLessThanOrEqual(MAX_IN_FILE + 1)
    expect(emptied).toBeGreaterThanOrEqual(2)
    // The "crash": LevelDB closed under the workspace, nothing flushed.
    await ws.store.db.close()
    const reopened = await LocalWorkspace.open({ home: h })
    // Stored with their rows, past the thousands of records of the file LevelDB had: read from the rows, nothing replayed.
    expect(await reopened.get('notes', `k${count - 1}`)).toEqual({ i: count - 1 })
    expect(reopened.loadedDoc('notes')).toBeUndefined()
    const all = await reopened.getAll('notes')
    expect(Object.keys(all)).toHaveLength(count)
    expect(all[`k${count - 1}`]).toEqual({ i: count - 1 })
    await reopened.close()
  })
})
