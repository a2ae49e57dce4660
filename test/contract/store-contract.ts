import { RecordCollection } from '../../src/core/record-collection.js'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { CompactionPolicy } from '../../src/core/compaction-policy.js'
import { isKitsyncError } from '../../src/core/errors.js'
import type { WorkspaceInfo } from '../../src/core/workspace-types.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { DocStore } from '../../src/store/doc-store.js'
import { frame as frameForTest } from '../../src/store/framing.js'
import type { BinaryLevel } from '../../src/store/level.js'
import type { SnapshotFiles } from '../../src/store/snapshot-files.js'

export interface StoreFixture {
  /** A fresh, open, empty database. */
  create(): Promise<BinaryLevel>
  /** The same database reopened after close (data kept). */
  reopen(db: BinaryLevel): Promise<BinaryLevel>
  /** Where the database keeps snapshots as files, if it does. */
  snapshotFiles?(db: BinaryLevel): SnapshotFiles
}

const info: WorkspaceInfo = { home: '/nowhere', deviceId: 'device', workspaceId: 'ws', name: 'test', version: '0' }

/** The acceptance suite every store adapter must pass (memory-level and LevelDB). */
export function storeContract(name: string, fixture: StoreFixture): void {
  const open = (db: BinaryLevel, compaction?: Partial<CompactionPolicy>): Promise<LocalWorkspace> =>
    LocalWorkspace.fromDatabase(db, info, {
      ...(compaction === undefined ? {} : { compaction }),
      ...(fixture.snapshotFiles === undefined ? {} : { snapshotFiles: fixture.snapshotFiles(db) }),
    })

  describe(`store contract: ${name}`, () => {
    it('reloads exactly the state that was written', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      await ws.set('notes', 'a', { text: 'hello', n: 1 })
      await ws.set('notes', 'b', [1, 2, 3])
      await ws.set('notes', 'a', 'world', { field: 'text' })
      await ws.set('tags', 't', true)
      expect(await ws.delete('notes', 'b')).toBe(true)
      const before = await ws.export()
      await ws.close()
      ws = await open(await fixture.reopen(db))
      const after = await ws.export()
      expect(after.collections).toEqual(before.collections)
      expect(after.collections).toEqual({ notes: { a: { text: 'world', n: 1 } }, tags: { t: true } })
      expect((await ws.list()).map((c) => [c.name, c.records])).toEqual([
        ['notes', 1],
        ['tags', 1],
      ])
      await ws.close()
    })

    it('compacts the log into a snapshot and reloads the same document', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      for (let i = 0; i < 200; i++) await ws.set('c', `k${i % 20}`, { i })
      expect((await ws.storageStats('c')).logEntries).toBe(200)
      await ws.compact('c')
      const stats = await ws.storageStats('c')
      expect(stats.logEntries).toBe(0)
      expect(stats.snapshotBytes).toBeGreaterThan(0)
      await ws.set('c', 'after', 1)
      const before = await ws.getAll('c')
      await ws.close()
      const keys: string[] = []
      const reopened = await fixture.reopen(db)
      for await (const k of reopened.keys()) keys.push(k)
      // A clean close folds the log written after the compaction into the snapshot too.
      expect(keys.filter((k) => k.startsWith('u!c!'))).toHaveLength(0)
      expect(keys).toContain('s!c')
      ws = await open(reopened)
      expect(await ws.getAll('c')).toEqual(before)
      expect(before.k19).toEqual({ i: 199 })
      await ws.close()
    })

    it('compacts by itself once the log outgrows the snapshot: when writing pauses, or at once past the hard bound', async () => {
      const ws = await open(await fixture.create(), { minBytes: 2000, ratio: 1, maxAgeMs: 3_600_000, idleMs: 200, urgentFactor: 4 })
      let largestLog = 0
      for (let i = 0; i < 300; i++) {
        await ws.set('c', `k${i % 10}`, { i, pad: 'x'.repeat(20) })
        const s = await ws.storageStats('c')
        largestLog = Math.max(largestLog, s.bytes - s.snapshotBytes)
        // Writing without a pause: the log never holds much more than 4 times the trigger.
        expect(s.bytes - s.snapshotBytes).toBeLessThan(4 * Math.max(2000, s.snapshotBytes) + 200)
      }
      // It did wait for a pause rather than compact at the trigger...
      expect(largestLog).toBeGreaterThan(2200)
      // (A compaction may have just emptied the log: write on until it is past the trigger again,
      // as a small snapshot of overwrites on layout 2 leaves the log under it now and then.)
      for (let i = 0; ; i++) {
        const s = await ws.storageStats('c')
        if (s.bytes - s.snapshotBytes > Math.max(2000, s.snapshotBytes)) break
        await ws.set('c', `k${i % 10}`, { i, pad: 'y'.repeat(20) })
      }
      // ...and once writing pauses, the log is folded into the snapshot.
      const deadline = Date.now() + 5000
      while ((await ws.storageStats('c')).logEntries > 0) {
        if (Date.now() > deadline) throw new Error('the log was not compacted within 5 s of the last write')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      expect((await ws.storageStats('c')).snapshotBytes).toBeGreaterThan(0)
      await ws.close()
    })

    it('stores the first large update of an empty collection as its snapshot', async () => {
      const db = await fixture.create()
      const source = new Y.Doc()
      const records = new RecordCollection('copied', source)
      for (let i = 0; i < 200; i++) records.set(`k${i}`, { pad: 'x'.repeat(50), i }, 'local')
      let ws = await open(db, { minBytes: 1000 })
      const doc = await ws.openDoc('copied')
      Y.applyUpdate(doc, Y.encodeStateAsUpdate(source), 'remote')
      await ws.flushDoc('copied')
      const stats = await ws.storageStats('copied')
      expect(stats.logEntries).toBe(0)
      expect(stats.snapshotBytes).toBeGreaterThan(1000)
      const keys: string[] = []
      for await (const k of db.keys({ gte: 'u!copied!', lt: 'u!copied"' })) keys.push(k)
      expect(keys).toEqual([])
      await ws.close()
      ws = await open(await fixture.reopen(db))
      expect(Object.keys(await ws.getAll('copied'))).toHaveLength(200)
      await ws.close()
    })

    it('adopts a large copy from a peer: written while it is checked, a collection only once kept', async () => {
      const db = await fixture.create()
      const source = new Y.Doc()
      const records = new RecordCollection('copied', source)
      for (let i = 0; i < 200; i++) records.set(`k${i}`, { pad: 'x'.repeat(50), i }, 'local')
      const copy = Y.encodeStateAsUpdate(source)
      let ws = await open(db, { minBytes: 1000 })
      // A copy that does not apply: whatever was written of it is removed, no collection is left.
      const broken = copy.slice(0, copy.byteLength - 40)
      await expect(ws.adopt('broken', broken)).rejects.toMatchObject({ code: 'PROTOCOL_ERROR' })
      await ws.flush()
      expect(await db.get('s!broken')).toBeUndefined()
      expect(await db.get('m!broken')).toBeUndefined()
      expect(ws.collectionNames()).not.toContain('broken')
      // A good copy is the collection's snapshot, with its metadata, once adopt resolves and it is flushed.
      expect(await ws.adopt('copied', copy)).toBeDefined()
      await ws.flushDoc('copied')
      expect(await db.get('m!copied')).toBeDefined()
      expect((await ws.storageStats('copied')).snapshotBytes).toBeGreaterThan(copy.byteLength)
      await ws.close()
      ws = await open(await fixture.reopen(db))
      expect(await ws.getAll('copied')).toEqual(records.entries())
      await ws.close()
    })

    it('ignores the copy an interrupted adoption left without metadata, and removes it on the first write', async () => {
      const db = await fixture.create()
      const source = new Y.Doc()
      new RecordCollection('c', source).set('stale', { from: 'an adoption that did not finish' }, 'local')
      // What a process killed between writing an adopted copy and keeping it leaves behind.
      await db.put('s!c', frameForTest(Y.encodeStateAsUpdate(source)))
      let ws = await open(db)
      expect(ws.collectionNames()).not.toContain('c')
      // A new collection of that name starts empty, and its first write removes the copy.
      await ws.set('c', 'fresh', 1)
      await ws.flush()
      expect(await db.get('s!c')).toBeUndefined()
      expect(await ws.getAll('c')).toEqual({ fresh: 1 })
      await ws.close()
      ws = await open(await fixture.reopen(db))
      expect(await ws.getAll('c')).toEqual({ fresh: 1 })
      await ws.close()
    })

    it('compacts an old log by age', async () => {
      let now = 1_000
      const db = await fixture.create()
      const store = new DocStore(db, { policy: { minBytes: 1e9, maxAgeMs: 500 }, now: () => now })
      const doc = new Y.Doc()
      const { log } = await store.open('aged', () => Y.encodeStateAsUpdate(doc))
      doc.on('update', (u: Uint8Array) => void log.append(u))
      doc.getMap('records').set('a', 1)
      await log.flush()
      log.tick()
      await log.flush()
      expect(log.stats().logEntries).toBe(1)
      now += 500
      log.tick()
      await log.flush()
      expect(log.stats().logEntries).toBe(0)
      expect(log.stats().snapshotBytes).toBeGreaterThan(0)
      await db.close()
    })

    it('hands out its stored updates as the whole state of a collection, also while it compacts', async () => {
      const db = await fixture.create()
      const ws = await open(db, { minBytes: 1 << 30, maxAgeMs: 1e12 })
      const state = (updates: Uint8Array[] | undefined): Record<string, unknown> => {
        const doc = new Y.Doc()
        for (const u of updates ?? []) Y.applyUpdate(doc, u)
        return new RecordCollection('c', doc).entries()
      }
      // A collection under 64 KiB is sent from its document, not from the store.
      const pad = 'x'.repeat(2000)
      await ws.set('c', 'k0', { i: 0, pad })
      expect(await ws.storedState('c')).toBeUndefined()
      for (let i = 1; i < 40; i++) await ws.set('c', `k${i}`, { i, pad })
      await ws.compact('c')
      for (let i = 0; i < 5; i++) await ws.set('c', `late${i}`, i)
      const stored = await ws.storedState('c')
      // The snapshot first, then the five log entries.
      expect(stored).toHaveLength(6)
      expect(state(stored)).toEqual(await ws.getAll('c'))
      // A compaction asked for during the read waits for it: the snapshot read and the log
      // read belong together. The snapshot read is held until a batch is written (or 50
      // turns pass), so a compaction that did not wait would delete the log it reads next.
      const level = ws.store.db as unknown as { get: (key: string) => Promise<unknown>; batch: (...args: unknown[]) => Promise<void> }
      const [get, batch] = [level.get.bind(level), level.batch.bind(level)]
      let batched = (): void => undefined
      const batchWritten = new Promise<void>((resolve) => (batched = resolve))
      const turns = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
      }
      level.batch = async (...args) => {
        await batch(...args)
        batched()
      }
      level.get = async (key) => {
        const value = await get(key)
        if (key === 's!c') await Promise.race([batchWritten, turns(50)])
        return value
      }
      const [during] = await Promise.all([ws.storedState('c'), ws.compact('c')])
      ;[level.get, level.batch] = [get, batch]
      expect(state(during)).toEqual(await ws.getAll('c'))
      expect(await ws.storedState('c')).toHaveLength(1)
      // A long log is not handed out entry by entry, and nothing is for a collection not held.
      for (let i = 0; i < 300; i++) await ws.set('long', `k${i}`, { i, pad })
      expect(await ws.storedState('long')).toBeUndefined()
      expect(await ws.storedState('nope')).toBeUndefined()
      await ws.close()
    })

    it('writes concurrent updates durably in groups', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      await Promise.all(Array.from({ length: 500 }, (_, i) => ws.set('many', `k${i}`, i)))
      await ws.close()
      ws = await open(await fixture.reopen(db))
      const all = await ws.getAll('many')
      expect(Object.keys(all)).toHaveLength(500)
      expect(all.k499).toBe(499)
      await ws.close()
    })

    it('keeps the log when the process dies without closing, and loads snapshot plus log', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      for (let i = 0; i < 50; i++) await ws.set('c', `k${i % 5}`, { i })
      await ws.compact('c')
      for (let i = 50; i < 60; i++) await ws.set('c', `k${i % 5}`, { i })
      // No close: as after kill -9, the log entries written after the snapshot stay.
      const keys: string[] = []
      for await (const k of db.keys({ gte: 'u!c!', lt: 'u!c"' })) keys.push(k)
      expect(keys).toHaveLength(10)
      const again = await open(db)
      expect(await again.getAll('c')).toEqual({ k0: { i: 55 }, k1: { i: 56 }, k2: { i: 57 }, k3: { i: 58 }, k4: { i: 59 } })
      ws = again
      await ws.close()
    })

    it('reports a damaged value as DATA_CORRUPTION of that collection, loads the others, deletes nothing', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      await ws.set('good', 'a', 1)
      await ws.set('bad', 'a', 1)
      await ws.set('bad', 'b', 2)
      await ws.close()
      const reopened = await fixture.reopen(db)
      const damagedKey = 's!bad'
      const original = await reopened.get(damagedKey)
      expect(original).toBeDefined()
      const damaged = (original as Uint8Array).slice()
      damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 0xff
      await reopened.put(damagedKey, damaged)
      ws = await open(reopened)
      const err = await ws.get('bad', 'a').catch((e: unknown) => e)
      expect(isKitsyncError(err, 'DATA_CORRUPTION')).toBe(true)
      expect((err as Error).message).toContain('bad')
      expect(await ws.get('good', 'a')).toBe(1)
      const listed = await ws.list()
      expect(listed.find((c) => c.name === 'bad')?.error?.code).toBe('DATA_CORRUPTION')
      expect(listed.find((c) => c.name === 'good')?.records).toBe(1)
      const exported = await ws.export()
      expect(exported.unreadable.map((u) => u.collection)).toEqual(['bad'])
      // Writing to a damaged collection is refused too, and nothing is deleted.
      expect(isKitsyncError(await ws.set('bad', 'c', 3).catch((e: unknown) => e), 'DATA_CORRUPTION')).toBe(true)
      await ws.close()
      const again = await fixture.reopen(reopened)
      expect(await again.get(damagedKey)).toEqual(damaged)
      await again.close()
    })

    it('refuses a write the store cannot take with STORAGE_FAILED and keeps memory equal to disk', async () => {
      const db = await fixture.create()
      const ws = await open(db)
      await ws.set('c', 'kept', 1)
      const realBatch = db.batch.bind(db)
      let fail = true
      ;(db as unknown as { batch: unknown }).batch = (...args: unknown[]) => {
        if (fail && Array.isArray(args[0])) return Promise.reject(Object.assign(new Error('No space left on device'), { code: 'ENOSPC' }))
        return (realBatch as (...a: unknown[]) => unknown)(...args)
      }
      const err = await ws.set('c', 'lost', 2).catch((e: unknown) => e)
      expect(isKitsyncError(err, 'STORAGE_FAILED')).toBe(true)
      fail = false
      // The failed write is not visible: the collection was reloaded from what is stored.
      expect(await ws.get('c', 'lost')).toBeUndefined()
      expect(await ws.get('c', 'kept')).toBe(1)
      await ws.set('c', 'next', 3)
      expect(await ws.getAll('c')).toEqual({ kept: 1, next: 3 })
      await ws.close()
    })

    it('lists collections that exist in the store without loading them', async () => {
      const db = await fixture.create()
      let ws = await open(db)
      await ws.set('b', 'k', 1)
      await ws.set('a', 'k', 1)
      await ws.close()
      const store = new DocStore(await fixture.reopen(db))
      expect(await store.collectionNames()).toEqual(['a', 'b'])
      ws = await open(store.db)
      expect(isKitsyncError(await ws.get('nope', 'k').catch((e: unknown) => e), 'UNKNOWN_COLLECTION')).toBe(true)
      await ws.close()
    })
  })
}
