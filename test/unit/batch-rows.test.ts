import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Hlc } from '../../src/core/hlc.js'
import type { JsonValue } from '../../src/core/json.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { checkpointKey, checkpointOf, type BatchOp } from '../../src/store/doc-layout.js'
import { unframe } from '../../src/store/framing.js'
import { pruneRecordOps, pruneRecordsOps, versionOps } from '../../src/store/history-rows.js'
import type { BinaryLevel } from '../../src/store/level.js'
import { readRows } from '../../src/store/record-rows.js'

/**
 * The rows of appends are made when their batch is put together (daemon/derived-rows.ts
 * RowCollector, store/derived-count.ts RowSource): one index row per record per batch, the
 * record count from the collection in memory instead of reading rows back, and the history
 * pruner walks many records with one iterator.
 */

const open: LocalWorkspace[] = []
afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

/** A small seeded generator (mulberry32): the same schedule on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const memoryDb = (): BinaryLevel => new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel

/** A workspace over memory-level whose every LevelDB batch is recorded. */
async function recorded(): Promise<{ ws: LocalWorkspace; db: BinaryLevel; batches: BatchOp[][] }> {
  const db = memoryDb()
  const batches: BatchOp[][] = []
  const target = db as unknown as { batch: (ops: BatchOp[], o?: object) => Promise<void> }
  const batch = target.batch.bind(target)
  target.batch = (ops, o) => {
    batches.push(ops)
    return batch(ops, o)
  }
  const ws = await LocalWorkspace.fromDatabase(
    db,
    { home: '', deviceId: 'device-a', workspaceId: 'ws', name: 'n', version: '0' },
    { compaction: { minBytes: 3000, idleMs: 5 } },
  )
  open.push(ws)
  return { ws, db, batches }
}

async function checkpointRecords(db: BinaryLevel, name: string): Promise<number | undefined> {
  const raw = await db.get(checkpointKey(name))
  return raw === undefined ? undefined : checkpointOf(unframe(raw) as Uint8Array)?.records
}

describe('rows made per batch', () => {
  it('after each batch of seeded un-awaited writes, deletes and merges, the count kept in memory equals a recount of the rows and of the records', async () => {
    const random = seeded(7)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`)
    const { ws, db } = await recorded()
    await ws.set('c', 'seed', 0)
    const peer = new Y.Doc()
    Y.applyUpdate(peer, Y.encodeStateAsUpdate(await ws.openDoc('c')))
    const b = new RecordCollection('c', peer, { clock: new Hlc('bbbbbbbb') })
    let checked = 0
    for (let round = 0; round < 30; round++) {
      // Many transactions per batch, the same records again and again among them.
      const writes: Promise<unknown>[] = []
      for (let i = 0; i < 40; i++) {
        const r = random()
        const key = pick(keys)
        if (r < 0.55) writes.push(ws.set('c', key, { n: Math.floor(random() * 1000) }))
        else if (r < 0.75) writes.push(ws.delete('c', key))
        else if (r < 0.9) b.set(key, { n: Math.floor(random() * 1000), from: 'b' }, 'b')
        else if (b.has(key)) b.delete(key, 'b')
      }
      const doc = await ws.openDoc('c')
      Y.applyUpdate(doc, Y.encodeStateAsUpdate(peer, Y.encodeStateVector(doc)), 'peer')
      Y.applyUpdate(peer, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(peer)))
      await Promise.all(writes)
      if (round % 10 === 4) await ws.compact('c')
      await ws.flush()
      const rows = await readRows(db, 'c')
      const all = await ws.getAll('c')
      expect(await checkpointRecords(db, 'c')).toBe(rows.length)
      expect(rows.length).toBe(Object.keys(all).length)
      // The rows hold what the records read now.
      expect(Object.fromEntries(rows.map(([k, row]) => [k, row?.v as JsonValue]))).toEqual(all)
      checked++
    }
    expect(checked).toBe(30)
    expect((await ws.check('c'))[0]).toMatchObject({ collection: 'c', differing: [] })
    expect((await ws.check('c'))[0]?.checkpointWrong).toBeUndefined()
  })

  it('a record written many times before its batch is written gets one index row in it, and every version its history entry', async () => {
    const { ws, batches } = await recorded()
    await ws.set('c', 'other', 1)
    await ws.flush()
    // 50 transactions of a peer (each its own version), applied here one after the other
    // before the log writes anything: they land in one batch.
    const peer = new Y.Doc()
    Y.applyUpdate(peer, Y.encodeStateAsUpdate(await ws.openDoc('c')))
    const b = new RecordCollection('c', peer, { clock: new Hlc('bbbbbbbb') })
    const updates: Uint8Array[] = []
    peer.on('update', (u: Uint8Array) => updates.push(u))
    for (let i = 0; i < 50; i++) b.set('k', { i }, 'b')
    expect(updates).toHaveLength(50)
    batches.length = 0
    const doc = await ws.openDoc('c')
    for (const u of updates) Y.applyUpdate(doc, u, 'peer')
    await ws.flush()
    const withRow = batches.filter((ops) => ops.some((op) => op.key === 'r!c!k'))
    expect(withRow).toHaveLength(1)
    expect((withRow[0] ?? []).filter((op) => op.key === 'r!c!k')).toHaveLength(1)
    expect((withRow[0] ?? []).filter((op) => op.key.startsWith('u!c!'))).toHaveLength(50)
    // History keeps every version (50 is within the default retention of 100).
    const history = await ws.history('c', 'k')
    expect(history.map((h) => h.value)).toEqual(Array.from({ length: 50 }, (_, i) => ({ i: 49 - i })))
    expect(await ws.get('c', 'k')).toEqual({ i: 49 })
    expect((await ws.check('c'))[0]).toMatchObject({ differing: [], records: 2 })
  })

  it('an adopted copy gets its rows after it is stored, and writes landing meanwhile are neither lost nor overwritten', async () => {
    const a = await recorded()
    await Promise.all(Array.from({ length: 4500 }, (_, i) => a.ws.set('c', `k${i}`, { i })))
    const copy = Y.encodeStateAsUpdate(await a.ws.openDoc('c'))
    const { ws, db, batches } = await recorded()
    expect(await ws.adopt('c', copy)).toBeDefined()
    // Writes right away, before the rows are written.
    const writes: Promise<unknown>[] = []
    for (let i = 0; i < 4500; i += 7) writes.push(i % 2 === 0 ? ws.set('c', `k${i}`, { i, again: true }) : ws.delete('c', `k${i}`))
    await Promise.all(writes)
    await ws.flush()
    // The copy's batch held no rows; they came after it.
    const first = batches.findIndex((ops) => ops.some((op) => op.key === 's!c'))
    expect(first).toBeGreaterThanOrEqual(0)
    expect((batches[first] ?? []).some((op) => op.key.startsWith('r!') || op.key.startsWith('h!'))).toBe(false)
    const rows = await readRows(db, 'c')
    const all = await ws.getAll('c')
    expect(Object.fromEntries(rows.map(([k, row]) => [k, row?.v as JsonValue]))).toEqual(all)
    expect(await checkpointRecords(db, 'c')).toBe(Object.keys(all).length)
    expect((await ws.check('c'))[0]).toMatchObject({ collection: 'c', differing: [] })
    expect((await ws.check('c'))[0]?.checkpointWrong).toBeUndefined()
    // History: the adopted version, then the write made here.
    expect((await ws.history('c', 'k14')).map((h) => h.value)).toEqual([{ i: 14, again: true }, { i: 14 }])
    expect((await ws.history('c', 'k4')).map((h) => h.value)).toEqual([{ i: 4 }])
  })

  it('pruning many records with one iterator deletes exactly what pruning each record alone deletes', async () => {
    const random = seeded(11)
    const db = memoryDb()
    const now = 1_800_000_000_000
    const day = 86_400_000
    // Records whose names prefix one another, with from 0 to 300 entries each, some older than the day limit.
    const keys = ['a', 'a1', 'a10', 'b', 'k', 'k!x', 'long', 'z'].concat(Array.from({ length: 30 }, (_, i) => `r${i}`))
    const ops: BatchOp[] = []
    keys.forEach((key, n) => {
      const count = key === 'long' ? 300 : Math.floor(random() * (n % 3 === 0 ? 120 : 6))
      for (let i = 0; i < count; i++) {
        const time = now - Math.floor(random() * 200) * day
        const stamp = `${time.toString(36).padStart(9, '0')}.${i.toString(36).padStart(4, '0')}.dev${n}`
        for (const op of versionOps('c', key, stamp, { device: `dev${n}`, fields: [], time, v: i })) ops.push(op)
      }
    })
    await db.batch(ops)
    const retention = { off: false, count: 100, days: 90 }
    const one: BatchOp[] = []
    for (const key of keys) for (const op of await pruneRecordOps(db, 'c', key, retention, now)) one.push(op)
    const many = await pruneRecordsOps(db, 'c', [...keys].reverse().concat(['missing']), retention, now)
    const sortedKeys = (list: BatchOp[]): string[] => list.map((op) => `${op.type} ${op.key}`).sort()
    expect(one.length).toBeGreaterThan(100)
    expect(sortedKeys(many)).toEqual(sortedKeys(one))
  })
})
