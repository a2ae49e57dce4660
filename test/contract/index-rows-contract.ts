import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { isKitsyncError } from '../../src/core/errors.js'
import { Hlc } from '../../src/core/hlc.js'
import type { JsonValue } from '../../src/core/json.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import type { WorkspaceInfo } from '../../src/core/workspace-types.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { checkpointKey, checkpointOf, jsonValue } from '../../src/store/doc-layout.js'
import { unframe } from '../../src/store/framing.js'
import type { BinaryLevel } from '../../src/store/level.js'
import { readRows } from '../../src/store/record-rows.js'
import type { StoreFixture } from './store-contract.js'

const info: WorkspaceInfo = { home: '/nowhere', deviceId: 'device-a', workspaceId: 'ws', name: 'test', version: '0' }

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

/** The records of a document and each one's greatest stamp, read by a collection of its own over a copy. */
function recordsOf(doc: Y.Doc): Map<string, { v: JsonValue; t: string }> {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  const c = new RecordCollection('c', copy)
  const out = new Map<string, { v: JsonValue; t: string }>()
  for (const key of c.keys()) out.set(key, { v: c.get(key) as JsonValue, t: c.lastWrite(key) ?? '' })
  return out
}

async function rowsOf(db: BinaryLevel, name: string): Promise<Map<string, { v: JsonValue; t: string }>> {
  return new Map((await readRows(db, name)).map(([k, row]) => [k, row as { v: JsonValue; t: string }]))
}

async function storedRecords(db: BinaryLevel, name: string): Promise<number | undefined> {
  const raw = await db.get(checkpointKey(name))
  return raw === undefined ? undefined : checkpointOf(unframe(raw) as Uint8Array)?.records
}

/** The index rows answer reads, and always equal the records they are derived from (memory-level and LevelDB). */
export function indexRowsContract(name: string, fixture: StoreFixture): void {
  const open = (db: BinaryLevel): Promise<LocalWorkspace> =>
    LocalWorkspace.fromDatabase(db, info, {
      compaction: { minBytes: 4000, idleMs: 20 },
      ...(fixture.snapshotFiles === undefined ? {} : { snapshotFiles: fixture.snapshotFiles(db) }),
    })

  describe(`index rows: ${name}`, () => {
    it('after seeded random writes, merges from a second replica, compactions and a reopen, the rows equal the records', async () => {
      const random = seeded(21)
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
      const keys = Array.from({ length: 40 }, (_, i) => `k${i}`)
      const db = await fixture.create()
      let ws = await open(db)
      await ws.set('c', 'seed', 0)
      // Replica B starts from this device's state and writes on its own between merges.
      const bDoc = new Y.Doc()
      Y.applyUpdate(bDoc, Y.encodeStateAsUpdate(await ws.openDoc('c')))
      const b = new RecordCollection('c', bDoc, { clock: new Hlc('bbbbbbbb') })
      const check = async (): Promise<void> => {
        await ws.flush()
        const records = recordsOf(await ws.openDoc('c'))
        expect(await rowsOf(ws.store.db, 'c')).toEqual(records)
        expect(await storedRecords(ws.store.db, 'c')).toBe(records.size)
        expect((await ws.check('c'))[0]).toMatchObject({ collection: 'c', records: records.size, differing: [] })
      }
      for (let round = 0; round < 12; round++) {
        for (let i = 0; i < 25; i++) {
          const r = random()
          const key = pick(keys)
          if (r < 0.45) await ws.set('c', key, { n: Math.floor(random() * 100), s: pick(['x', 'y', 'z']) })
          else if (r < 0.6) await ws.set('c', key, pick(['p', 'q']), { field: 's' })
          else if (r < 0.7) await ws.delete('c', key)
          else if (r < 0.9) b.set(key, { n: Math.floor(random() * 100), from: 'b' }, 'b')
          else if (b.has(key)) b.delete(key, 'b')
        }
        // Merge both ways: B's writes arrive as a peer's update would, concurrent ones included.
        const doc = await ws.openDoc('c')
        Y.applyUpdate(doc, Y.encodeStateAsUpdate(bDoc, Y.encodeStateVector(doc)), 'peer')
        Y.applyUpdate(bDoc, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(bDoc)))
        if (round % 4 === 1) await ws.compact('c')
        if (round % 4 === 3) {
          await check()
          await ws.close()
          ws = await open(await fixture.reopen(ws.store.db))
        }
      }
      await check()
      await ws.close()
    })

    it('answers get, getAll, list and export from the rows without loading the document, and from the document once loaded', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      for (let i = 0; i < 50; i++) await ws.set('c', `k${i}`, { i })
      await ws.delete('c', 'k3')
      await ws.set('d', 'only', true)
      const before = await ws.getAll('c')
      await ws.close()
      ws = await open(await fixture.reopen(db))
      expect(await ws.get('c', 'k7')).toEqual({ i: 7 })
      expect(await ws.get('c', 'k3')).toBeUndefined()
      expect(await ws.getAll('c')).toEqual(before)
      const listed = await ws.list()
      expect(listed.map((c) => [c.name, c.records, c.bytes > 0])).toEqual([
        ['c', 49, true],
        ['d', 1, true],
      ])
      expect((await ws.export()).collections).toEqual({ c: before, d: { only: true } })
      expect(isKitsyncError(await ws.get('nope', 'k').catch((e: unknown) => e), 'UNKNOWN_COLLECTION')).toBe(true)
      expect(ws.loadedDoc('c')).toBeUndefined()
      expect(ws.loadedDoc('d')).toBeUndefined()
      // The bytes are those the collection reports once loaded.
      expect((await ws.storageStats('c')).bytes).toBe(listed.find((c) => c.name === 'c')?.bytes)
      await ws.set('c', 'k1', 'new')
      expect(ws.loadedDoc('c')).toBeDefined()
      expect(await ws.get('c', 'k1')).toBe('new')
      expect((await ws.list()).find((c) => c.name === 'c')?.records).toBe(49)
      await ws.close()
    })

    it('conflicts settled by policy or by resolve (whose collapse emits no change) leave the rows equal to the records', async () => {
      for (const [policy, take] of [
        ['ask', 0],
        ['ask', 1],
        ['keep_both', -1],
        ['latest_wins', -1],
      ] as const) {
        const db = await fixture.create()
        const ws = await open(db)
        await ws.configure('c', { policy })
        await ws.set('c', 'k', { x: 1 })
        const peer = new Y.Doc()
        Y.applyUpdate(peer, Y.encodeStateAsUpdate(await ws.openDoc('c')))
        // The peer's clock runs ahead: its concurrent version is the newer one.
        new RecordCollection('c', peer, { policy, clock: new Hlc('zzzzzzzz', () => Date.now() + 60_000) }).set('k', { x: 2 }, 'peer')
        await ws.set('c', 'k', { x: 3 })
        const doc = await ws.openDoc('c')
        Y.applyUpdate(doc, Y.encodeStateAsUpdate(peer, Y.encodeStateVector(doc)), 'peer')
        if (take >= 0) {
          let open = await ws.conflicts('c')
          for (const deadline = Date.now() + 5000; open.length === 0; open = await ws.conflicts('c')) {
            if (Date.now() > deadline) throw new Error(`no conflict recorded (${policy})`)
            await new Promise((resolve) => setImmediate(resolve))
          }
          const version = open[0]?.versions[take] as { device: string }
          await ws.resolve('c', open[0]?.id as string, { take: version.device })
        }
        await ws.flush()
        const records = recordsOf(doc)
        expect(await rowsOf(ws.store.db, 'c'), policy).toEqual(records)
        expect((await ws.check('c'))[0], policy).toMatchObject({ differing: [], records: records.size })
        await ws.close()
      }
    })

    it('a repair of a loaded collection with writes in flight ends with rows and count equal to the records', async () => {
      const db = await fixture.create()
      const ws = await open(db)
      await Promise.all(Array.from({ length: 7000 }, (_, i) => ws.set('c', `k${i}`, i)))
      await ws.flush()
      await ws.store.db.batch([
        { type: 'del', key: 'r!c!k10' },
        { type: 'put', key: 'r!c!ghost', value: (await ws.store.db.get('r!c!k11')) as Uint8Array },
      ])
      // The rebuild runs in several batches; writes (new records, deletes) land between them.
      // Every batch from here on (a crash may come between any two).
      const batches: { key: string; type: string }[][] = []
      const target = ws.store.db as unknown as { batch: (ops: { key: string; type: string }[], o?: object) => Promise<void> }
      const batch = target.batch.bind(target)
      target.batch = (ops, o) => {
        batches.push(ops)
        return batch(ops, o)
      }
      let repaired = false
      const repair = ws.check('c', { repair: true }).finally(() => (repaired = true))
      let during = 0
      const writer = async (w: number): Promise<void> => {
        for (let i = w; i < 20_000 && !repaired; i += 4) {
          await (i % 3 === 0 ? ws.delete('c', `k${i}`) : ws.set('c', `new${i}`, i))
          during++
        }
      }
      await Promise.all([0, 1, 2, 3].map(writer))
      const [report] = await repair
      expect(during).toBeGreaterThan(10)
      // Once the build removed the checkpoint, the next one is its own last batch's, not an append's:
      // a crash in between must leave no checkpoint over half-built rows.
      const removed = batches.findIndex((ops) => ops.some((op) => op.key === 'n!c' && op.type === 'del'))
      const next = batches.findIndex((ops, i) => i > removed && ops.some((op) => op.key === 'n!c' && op.type === 'put'))
      expect(removed).toBeGreaterThanOrEqual(0)
      expect((batches[next] ?? []).some((op) => op.key.startsWith('u!c!'))).toBe(false)
      await ws.flush()
      expect(report).toMatchObject({ repaired: true })
      const records = recordsOf(await ws.openDoc('c'))
      expect(await rowsOf(ws.store.db, 'c')).toEqual(records)
      expect(await storedRecords(ws.store.db, 'c')).toBe(records.size)
      expect((await ws.check('c'))[0]).toMatchObject({ differing: [], records: records.size })
      expect((await ws.check('c'))[0]?.checkpointWrong).toBeUndefined()
      await ws.close()
    })

    it('rows derived under other read rules are built anew: a settings change, or a checkpoint of other rules', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      for (let i = 0; i < 10; i++) await ws.set('c', `k${i}`, { i })
      await ws.flush()
      const rulesNow = async (): Promise<string | undefined> => {
        const raw = await ws.store.db.get(checkpointKey('c'))
        return raw === undefined ? undefined : checkpointOf(unframe(raw) as Uint8Array)?.rules
      }
      const before = await rulesNow()
      expect(before).toContain('merge')
      await ws.configure('c', { policy: 'latest_wins' })
      // Rebuilt behind the settings change: wait for it, with a deadline.
      for (const deadline = Date.now() + 5000; (await rulesNow()) === before;) {
        if (Date.now() > deadline) throw new Error('the rows were not rebuilt under the new rules')
        await new Promise((resolve) => setImmediate(resolve))
      }
      expect(await rulesNow()).toContain('latest_wins')
      expect((await ws.check('c'))[0]?.differing).toEqual([])
      await ws.close()
      // A checkpoint of other rules (settings that changed while the collection was not loaded):
      // reads load the document, whose open builds the rows again.
      const reopened = await fixture.reopen(db)
      const raw = (await reopened.get(checkpointKey('c'))) as Uint8Array
      const cp = checkpointOf(unframe(raw) as Uint8Array) as { seq: number; records: number }
      await reopened.put(checkpointKey('c'), jsonValue({ ...cp, rules: 'other' }))
      ws = await open(reopened)
      expect(await ws.get('c', 'k1')).toEqual({ i: 1 })
      expect(ws.loadedDoc('c')).toBeDefined()
      expect(await rulesNow()).toContain('latest_wins')
      await ws.close()
      ws = await open(await fixture.reopen(reopened))
      expect(await ws.get('c', 'k2')).toEqual({ i: 2 })
      expect(ws.loadedDoc('c')).toBeUndefined()
      await ws.close()
    })

    it('check finds a damaged or wrong row, reads of a damaged one come from the document, and check --repair rebuilds the rows from the records', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      for (let i = 0; i < 20; i++) await ws.set('c', `k${i}`, i)
      await ws.close()
      const reopened = await fixture.reopen(db)
      await reopened.batch([
        { type: 'put', key: 'r!c!k5', value: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]) },
        { type: 'put', key: 'r!c!ghost', value: (await reopened.get('r!c!k6')) as Uint8Array },
        { type: 'del', key: 'r!c!k7' },
      ])
      ws = await open(reopened)
      expect(await ws.get('c', 'k4')).toBe(4)
      expect(ws.loadedDoc('c')).toBeUndefined()
      // The damaged row is not trusted: the document, loaded for it, answers.
      expect(await ws.get('c', 'k5')).toBe(5)
      expect(ws.loadedDoc('c')).toBeDefined()
      const [found] = await ws.check('c')
      expect(found).toMatchObject({ collection: 'c', records: 20, differing: ['ghost', 'k5', 'k7'] })
      const [repaired] = await ws.check('c', { repair: true })
      expect(repaired).toMatchObject({ collection: 'c', records: 20, differing: [], repaired: true })
      expect(await ws.get('c', 'k5')).toBe(5)
      expect((await ws.check())[0]?.differing).toEqual([])
      await ws.close()
      ws = await open(await fixture.reopen(reopened))
      expect(await ws.get('c', 'k5')).toBe(5)
      expect(await ws.get('c', 'k7')).toBe(7)
      expect(await ws.get('c', 'ghost')).toBeUndefined()
      expect(ws.loadedDoc('c')).toBeUndefined()
      await ws.close()
    })
  })
}
