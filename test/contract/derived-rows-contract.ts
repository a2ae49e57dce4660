import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { RecordCollection } from '../../src/core/record-collection.js'
import type { JsonValue } from '../../src/core/json.js'
import type { WorkspaceInfo } from '../../src/core/workspace-types.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { DatabaseOptions } from '../../src/daemon/workspace-parts.js'
import { checkpointKey, checkpointOf, parseJson, type BatchOp } from '../../src/store/doc-layout.js'
import { unframe } from '../../src/store/framing.js'
import type { BinaryLevel } from '../../src/store/level.js'
import { readRows } from '../../src/store/record-rows.js'
import type { StoreFixture } from './store-contract.js'

const info: WorkspaceInfo = { home: '/nowhere', deviceId: 'device', workspaceId: 'ws', name: 'test', version: '0' }

type Batch = (ops: BatchOp[], options?: object) => Promise<void>

/** Every batch LevelDB is given from now on, as written (or refused, if `refuse` says so). */
function watchBatches(db: BinaryLevel, refuse: (ops: BatchOp[]) => boolean = () => false): BatchOp[][] {
  const seen: BatchOp[][] = []
  const target = db as unknown as { batch: Batch }
  const batch = target.batch.bind(target)
  target.batch = async (ops, options) => {
    if (refuse(ops)) throw new Error('refused by the test')
    seen.push(ops)
    return batch(ops, options)
  }
  return seen
}

/** The index rows of a collection, as records. */
async function rowRecords(db: BinaryLevel, name: string): Promise<Record<string, JsonValue>> {
  const out: Record<string, JsonValue> = {}
  for (const [key, row] of await readRows(db, name)) out[key] = (row as { v: JsonValue }).v
  return out
}

async function storedCheckpoint(db: BinaryLevel, name: string): Promise<{ seq: number; records: number } | undefined> {
  const raw = await db.get(checkpointKey(name))
  return raw === undefined ? undefined : checkpointOf(unframe(raw) as Uint8Array)
}

/** An update that writes `key` = `value` into a copy of `doc` (what a peer, or a write only the write-ahead file kept, brings). */
function updateOf(doc: Y.Doc, key: string, value: JsonValue): Uint8Array {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  let update: Uint8Array | undefined
  copy.on('update', (u: Uint8Array) => {
    update = u
  })
  new RecordCollection('c', copy).set(key, value, 'test')
  return update as Uint8Array
}

/** Rows derived from records go in the very batch of the update they come from (memory-level and LevelDB). */
export function derivedRowsContract(name: string, fixture: StoreFixture): void {
  const open = (db: BinaryLevel, options: DatabaseOptions = {}): Promise<LocalWorkspace> =>
    LocalWorkspace.fromDatabase(db, info, { ...options, ...(fixture.snapshotFiles === undefined ? {} : { snapshotFiles: fixture.snapshotFiles(db) }) })

  describe(`derived rows: ${name}`, () => {
    it('writes each index row and the checkpoint in the batch of the update they come from', async () => {
      const db = await fixture.create()
      const ws = await open(db)
      const batches = watchBatches(db)
      await ws.set('c', 'a', { n: 1 })
      await ws.set('c', 'b', 'two')
      await ws.set('c', 'a', 3, { field: 'n' })
      await ws.delete('c', 'b')
      await ws.flush()
      const data = batches.filter((ops) => ops.some((op) => op.key.startsWith('u!c!') || op.key === 's!c'))
      expect(data.length).toBeGreaterThan(0)
      for (const ops of data) expect(ops.map((op) => op.key)).toContain('n!c')
      // No row is written anywhere else.
      for (const ops of batches) if (ops.some((op) => op.key.startsWith('r!c!'))) expect(data).toContain(ops)
      const rowKeys = batches.flat().filter((op) => op.key.startsWith('r!c!'))
      expect(rowKeys.map((op) => [op.key, op.type])).toEqual([
        ['r!c!a', 'put'],
        ['r!c!b', 'put'],
        ['r!c!a', 'put'],
        ['r!c!b', 'del'],
      ])
      expect(await rowRecords(db, 'c')).toEqual({ a: { n: 3 } })
      const lastSeq = Math.max(
        ...batches
          .flat()
          .filter((op) => op.key.startsWith('u!c!'))
          .map((op) => parseInt(op.key.slice(4), 16)),
      )
      expect(await storedCheckpoint(db, 'c')).toMatchObject({ seq: lastSeq, records: 1 })
      await ws.close()
    })

    it('after every batch, the stored rows are the records of the stored updates (group commits, merges that conflict)', async () => {
      const db = await fixture.create()
      const ws = await LocalWorkspace.fromDatabase(db, info, { compaction: { minBytes: 1e9, maxAgeMs: 1e9 } })
      await ws.configure('c', { policy: 'ask' })
      await ws.set('c', 'a', { n: 0 })
      await ws.flush()
      // What is stored when the watch starts: the log so far (no compaction here) and the rows.
      const stored = new Y.Doc()
      for await (const value of db.values({ gte: 'u!c!', lt: 'u!c"' })) Y.applyUpdate(stored, unframe(value) as Uint8Array)
      const rows = new Map(Object.entries(await rowRecords(db, 'c')).map(([k, v]) => [k, JSON.stringify(v)]))
      const batches = watchBatches(db)
      const peer = new Y.Doc()
      Y.applyUpdate(peer, Y.encodeStateAsUpdate(await ws.openDoc('c')))
      const other = new RecordCollection('c', peer, { policy: 'ask' })
      for (let round = 0; round < 5; round++) {
        // A burst of writes in flight together (grouped in transactions), and concurrent peer writes to the same keys.
        await Promise.all(Array.from({ length: 30 }, (_, i) => ws.set('c', `k${i % 7}`, { round, i })))
        for (let i = 0; i < 5; i++) other.set(`k${i}`, { peer: round, i }, 'peer')
        const doc = await ws.openDoc('c')
        Y.applyUpdate(doc, Y.encodeStateAsUpdate(peer, Y.encodeStateVector(doc)), 'peer')
        Y.applyUpdate(peer, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(peer)))
        await ws.delete('c', `k${round}`)
      }
      await ws.flush()
      const reader = new RecordCollection('c', stored, { policy: 'ask' })
      let checked = 0
      for (const ops of batches) {
        for (const op of ops) {
          if (op.key.startsWith('u!c!') && op.type === 'put') Y.applyUpdate(stored, unframe(op.value) as Uint8Array)
          if (!op.key.startsWith('r!c!')) continue
          if (op.type === 'del') rows.delete(op.key.slice(4))
          else rows.set(op.key.slice(4), JSON.stringify((parseJson(unframe(op.value) as Uint8Array) as { v: JsonValue }).v))
        }
        if (!ops.some((op) => op.key.startsWith('u!c!'))) continue
        expect(rows).toEqual(new Map(reader.keys().map((k) => [k, JSON.stringify(reader.get(k))])))
        checked++
      }
      expect(checked).toBeGreaterThan(3)
      expect(reader.size).toBe((await storedCheckpoint(db, 'c'))?.records)
      await ws.close()
    })

    it('a batch that fails leaves neither the update nor its rows', async () => {
      const db = await fixture.create()
      const ws = await open(db)
      await ws.set('c', 'kept', 1)
      await ws.flush()
      const before = await storedCheckpoint(db, 'c')
      watchBatches(db, (ops) => ops.some((op) => op.key === 'r!c!lost'))
      await expect(ws.set('c', 'lost', 2)).rejects.toThrow()
      // Without a write-ahead file the write was never acknowledged: nothing of it is stored.
      expect(await db.get('r!c!lost')).toBeUndefined()
      expect(await storedCheckpoint(db, 'c')).toEqual(before)
      await ws.close().catch(() => undefined)
      const again = await open(await fixture.reopen(db))
      expect(await again.getAll('c')).toEqual({ kept: 1 })
      expect(await rowRecords(again.store.db, 'c')).toEqual({ kept: 1 })
      await again.close()
    })

    it('derives the rows of updates stored without them (a crash after the write-ahead file) when the collection opens', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      await ws.set('c', 'a', 1)
      await ws.compact('c') // the log is empty: recovered updates continue the checkpoint's seqs
      await ws.set('c', 'b', 2)
      const doc = await ws.openDoc('c')
      const acked = [updateOf(doc, 'w1', 'x'), updateOf(doc, 'a', 'again')]
      await ws.close()
      const reopened = await fixture.reopen(db)
      const batches = watchBatches(reopened)
      ws = await open(reopened, { recover: acked.map((update) => ({ collection: 'c', update })) })
      // Recovered into the log, without rows: the rows still lag...
      expect(await rowRecords(reopened, 'c')).toEqual({ a: 1, b: 2 })
      // ...until the collection opens, which derives them before it answers.
      expect(await ws.getAll('c')).toEqual({ a: 'again', b: 2, w1: 'x' })
      expect(await rowRecords(reopened, 'c')).toEqual({ a: 'again', b: 2, w1: 'x' })
      const replayed = batches.find((ops) => ops.some((op) => op.key === 'r!c!w1'))
      const replayedKeys = replayed?.map((op) => op.key).sort() ?? []
      expect(replayedKeys.filter((k) => !/^[hc]!/.test(k))).toEqual(['n!c', 'r!c!a', 'r!c!w1'])
      // The history entries of the replayed versions go in the same batch (one per record, and its c! twin).
      expect(replayedKeys.filter((k) => k.startsWith('h!')).map((k) => k.slice(0, k.indexOf('\0')))).toEqual(['h!c!a', 'h!c!w1'])
      expect(replayedKeys.filter((k) => k.startsWith('c!'))).toHaveLength(2)
      const cp = await storedCheckpoint(reopened, 'c')
      expect(cp?.records).toBe(3)
      const logKeys: string[] = []
      for await (const k of reopened.keys({ gte: 'u!c!', lt: 'u!c"' })) logKeys.push(k)
      expect(cp?.seq).toBe(parseInt((logKeys.at(-1) as string).slice(4), 16))
      await ws.close()
    })

    it('builds the rows of a collection stored without any (an older version) once, from the whole collection', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      for (let i = 0; i < 4500; i++) await ws.set('c', `k${i}`, i % 3 === 0 ? { i } : i)
      await ws.delete('c', 'k7')
      const records = await ws.getAll('c')
      await ws.close()
      const old = await fixture.reopen(db)
      const strip: BatchOp[] = [{ type: 'del', key: 'n!c' }]
      for await (const k of old.keys({ gte: 'r!c!', lt: 'r!c"' })) strip.push({ type: 'del', key: k })
      // A row of a record the collection does not hold goes in the build too.
      strip.push({ type: 'put', key: 'r!c!ghost', value: (await old.get('r!c!k1')) as Uint8Array })
      await old.batch(strip)
      const batches = watchBatches(old)
      ws = await open(old)
      expect(await ws.get('c', 'k1')).toBe(1)
      expect(await rowRecords(old, 'c')).toEqual(records)
      // In several batches, the checkpoint with the last one.
      const built = batches.filter((ops) => ops.some((op) => op.key.startsWith('r!c!')))
      expect(built.length).toBeGreaterThan(1)
      expect((built.at(-1) as BatchOp[]).some((op) => op.key === 'n!c' && op.type === 'put')).toBe(true)
      expect((await storedCheckpoint(old, 'c'))?.records).toBe(4499)
      await ws.close()
    })

    it('deleting a collection deletes its rows in the same batch', async () => {
      const db = await fixture.create()
      const ws = await open(db)
      await ws.set('c', 'a', 1)
      await ws.set('d', 'a', 1)
      await ws.close()
      const again = await fixture.reopen(db)
      const batches = watchBatches(again)
      const wsAgain = await open(again)
      await wsAgain.store.drop('c')
      const left: string[] = []
      for await (const k of again.keys()) left.push(k)
      expect(left.filter((k) => k.includes('!c!') || k.endsWith('!c'))).toEqual([])
      expect(left).toContain('r!d!a')
      expect(batches).toHaveLength(1)
      expect((batches[0] as BatchOp[]).map((op) => op.key)).toEqual(expect.arrayContaining(['m!c', 'n!c', 'r!c!a']))
      await wsAgain.close()
    })

    it('the checkpoint counts records as the collection does, across deletes, compactions and a reopen', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      for (let i = 0; i < 30; i++) await ws.set('c', `k${i % 12}`, i)
      await ws.delete('c', 'k3')
      await ws.delete('c', 'k3')
      await ws.compact('c')
      await ws.set('c', 'k3', 'back')
      await ws.delete('c', 'k4')
      await ws.close()
      ws = await open(await fixture.reopen(db))
      const cp = await storedCheckpoint(ws.store.db, 'c')
      expect(cp?.records).toBe(11)
      expect(Object.keys(await ws.getAll('c'))).toHaveLength(11)
      expect(parseJson(unframe((await ws.store.db.get('r!c!k3')) as Uint8Array) as Uint8Array)).toMatchObject({ v: 'back' })
      await ws.close()
    })
  })
}
