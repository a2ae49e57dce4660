import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { DAY_MS, DEFAULT_HISTORY, effectiveRetention, parseHistorySetting, parseTime } from '../../src/core/history-types.js'
import { Hlc } from '../../src/core/hlc.js'
import { lazyChanges } from '../../src/core/record-changes.js'
import { RecordCollection, type RecordChange } from '../../src/core/record-collection.js'
import { LOCAL_ORIGIN } from '../../src/daemon/collection-registry.js'
import { HistoryDeriver } from '../../src/daemon/history-deriver.js'
import type { BatchOp } from '../../src/store/doc-layout.js'
import { pruneCollection, pruneRecordOps, readCollectionChanges, readRecordHistory } from '../../src/store/history-rows.js'
import type { BinaryLevel } from '../../src/store/level.js'

/** A collection whose every transaction's history rows go to a memory LevelDB, as the registry's batches would. */
function replica(tag: string, clock: () => number, retention = DEFAULT_HISTORY) {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel
  const doc = new Y.Doc()
  const collection = new RecordCollection('notes', doc, { clock: new Hlc(tag, clock) })
  const deriver = new HistoryDeriver({ retentionOf: () => retention })
  const pending: BatchOp[][] = []
  collection.onChange((changes: RecordChange[]) => pending.push(deriver.derive('notes', collection, changes, changes[0]?.origin)))
  const flush = async (): Promise<void> => {
    for (const ops of pending.splice(0)) await db.batch(ops)
  }
  return { db, doc, collection, flush }
}

describe('history deriver and rows', () => {
  it('lists whole writes newest first with their values, writer and changed fields', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    a.collection.set('k', { title: 'one', n: 1 }, LOCAL_ORIGIN)
    now += 1000
    a.collection.set('k', { title: 'two', n: 1 }, LOCAL_ORIGIN)
    now += 1000
    a.collection.set('k', { title: 'three', n: 2 }, LOCAL_ORIGIN)
    await a.flush()
    const { versions, older } = await readRecordHistory(a.db, 'notes', 'k')
    expect(versions.map((v) => v.v)).toEqual([
      { n: 2, title: 'three' },
      { n: 1, title: 'two' },
      { n: 1, title: 'one' },
    ])
    expect(older).toBeUndefined()
    expect(versions.every((v) => v.device === 'devA' && v.w === 1)).toBe(true)
    expect(versions[2]?.time).toBe(1_800_000_000_000)
    // The stamps sort newest first and carry the writer's tag.
    expect(versions.map((v) => v.stamp)).toEqual([...versions.map((v) => v.stamp)].sort().reverse())
    expect(versions[0]?.stamp.endsWith('.devA')).toBe(true)
  })

  it('records a field write as the whole record with that field, and a delete', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    a.collection.set('k', { title: 'one', status: 'open' }, LOCAL_ORIGIN)
    now += 10
    a.collection.set('k', 'closed', LOCAL_ORIGIN, 'status')
    now += 10
    a.collection.delete('k', LOCAL_ORIGIN)
    await a.flush()
    const { versions } = await readRecordHistory(a.db, 'notes', 'k')
    expect(versions).toHaveLength(3)
    expect(versions[0]).toMatchObject({ d: 1, w: 1 })
    expect(versions[0]?.v).toBeUndefined()
    expect(versions[1]).toMatchObject({ v: { title: 'one', status: 'closed' }, fields: ['status'] })
    expect(versions[1]?.w).toBeUndefined()
    expect(versions[2]).toMatchObject({ v: { title: 'one', status: 'open' }, fields: ['status', 'title'] })
  })

  it('gives concurrent versions of two replicas an entry each, on both replicas', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    const b = replica('devB', () => now)
    a.collection.set('k', { v: 'base' }, LOCAL_ORIGIN)
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc), 'peer')
    now += 5
    // Written concurrently: neither has seen the other's.
    a.collection.set('k', { v: 'from A' }, LOCAL_ORIGIN)
    b.collection.set('k', { v: 'from B' }, LOCAL_ORIGIN)
    const fromA = Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc))
    const fromB = Y.encodeStateAsUpdate(b.doc, Y.encodeStateVector(a.doc))
    Y.applyUpdate(b.doc, fromA, 'peer')
    Y.applyUpdate(a.doc, fromB, 'peer')
    await a.flush()
    await b.flush()
    for (const r of [a, b]) {
      const { versions } = await readRecordHistory(r.db, 'notes', 'k')
      expect(versions.map((v) => v.device).sort()).toEqual(['devA', 'devA', 'devB'])
      expect(versions.map((v) => v.v)).toContainEqual({ v: 'from A' })
      expect(versions.map((v) => v.v)).toContainEqual({ v: 'from B' })
      expect(versions.at(-1)?.v).toEqual({ v: 'base' })
    }
    // Both list the same versions under the same stamps.
    const stamps = async (r: typeof a) => (await readRecordHistory(r.db, 'notes', 'k')).versions.map((v) => v.stamp)
    expect(await stamps(a)).toEqual(await stamps(b))
  })

  it('lists a collection’s changes since a time, newest first', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    a.collection.set('x', 1, LOCAL_ORIGIN)
    now += 60_000
    a.collection.set('y', 2, LOCAL_ORIGIN)
    now += 60_000
    a.collection.set('x', 3, LOCAL_ORIGIN)
    await a.flush()
    const all = await readCollectionChanges(a.db, 'notes', 0, 100)
    expect(all.map((c) => [c.key, c.v])).toEqual([
      ['x', 3],
      ['y', 2],
      ['x', 1],
    ])
    const recent = await readCollectionChanges(a.db, 'notes', 1_800_000_000_000 + 30_000, 100)
    expect(recent.map((c) => c.key)).toEqual(['x', 'y'])
  })

  it('prunes by count, never the newest version', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    for (let i = 0; i < 10; i++) {
      a.collection.set('k', { i }, LOCAL_ORIGIN)
      now += 1
    }
    await a.flush()
    const ops = await pruneRecordOps(a.db, 'notes', 'k', { off: false, count: 3, days: 90 }, now)
    await a.db.batch(ops)
    const { versions } = await readRecordHistory(a.db, 'notes', 'k')
    expect(versions.map((v) => v.v)).toEqual([{ i: 9 }, { i: 8 }, { i: 7 }])
    // The c! rows went with them.
    expect((await readCollectionChanges(a.db, 'notes', 0, 100)).map((c) => c.v)).toEqual([{ i: 9 }, { i: 8 }, { i: 7 }])
  })

  it('prunes by days with an injected clock, keeping the live version however old', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    a.collection.set('old', 'only version', LOCAL_ORIGIN)
    a.collection.set('k', 'ten days ago', LOCAL_ORIGIN)
    now += 8 * DAY_MS
    a.collection.set('k', 'two days ago', LOCAL_ORIGIN)
    now += 1 * DAY_MS
    a.collection.set('k', 'one day ago', LOCAL_ORIGIN)
    await a.flush()
    now += 1 * DAY_MS
    const batches: number[] = []
    const dropped = await pruneCollection(a.db, 'notes', { off: false, count: 100, days: 5 }, now, async (ops) => {
      batches.push(ops.length)
      await a.db.batch(ops)
    })
    expect(dropped).toBe(1)
    expect((await readRecordHistory(a.db, 'notes', 'k')).versions.map((v) => v.v)).toEqual(['one day ago', 'two days ago'])
    expect((await readRecordHistory(a.db, 'notes', 'old')).versions.map((v) => v.v)).toEqual(['only version'])
    // Off drops every entry and records none.
    await pruneCollection(a.db, 'notes', effectiveRetention('off'), now, async (ops) => void (await a.db.batch(ops)))
    expect((await readCollectionChanges(a.db, 'notes', 0, 100)).length).toBe(0)
  })

  it('gives a record adopted whole (no stamps known) its current version as first entry', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    a.collection.set('k', { title: 'one' }, LOCAL_ORIGIN)
    now += 10
    a.collection.set('k', 'two', LOCAL_ORIGIN, 'title')
    const copy = new RecordCollection('notes', new Y.Doc(), { clock: new Hlc('devB', () => now) })
    Y.applyUpdate(copy.doc, Y.encodeStateAsUpdate(a.doc))
    const ops = new HistoryDeriver({ retentionOf: () => DEFAULT_HISTORY }).derive('notes', copy, lazyChanges(copy, copy.keys(), 'adopted'), 'adopted')
    const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel
    await db.batch(ops)
    const { versions } = await readRecordHistory(db, 'notes', 'k')
    expect(versions).toHaveLength(1)
    expect(versions[0]).toMatchObject({ v: { title: 'two' }, device: 'devA', stamp: a.collection.lastWrite('k') })
  })

  it('stamps a set element this device removes as a version; another device’s removal or collapse adds none', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    const b = replica('devB', () => now)
    a.collection.configure({ fieldTypes: { tags: 'set' } })
    b.collection.configure({ fieldTypes: { tags: 'set' } })
    a.collection.addToSet('k', 'tags', ['x', 'y'], LOCAL_ORIGIN)
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc), 'peer')
    now += 10
    const vector = Y.encodeStateVector(b.doc)
    a.collection.removeFromSet('k', 'tags', ['x'], LOCAL_ORIGIN)
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc, vector), 'peer')
    expect(b.collection.get('k')).toEqual({ tags: ['y'] })
    await a.flush()
    await b.flush()
    const onA = (await readRecordHistory(a.db, 'notes', 'k')).versions
    expect(onA.map((v) => [v.v, v.device])).toEqual([
      [{ tags: ['y'] }, 'devA'],
      [{ tags: ['x', 'y'] }, 'devA'],
    ])
    expect((await readRecordHistory(b.db, 'notes', 'k')).versions.map((v) => v.v)).toEqual([{ tags: ['x', 'y'] }])
  })

  it('records nothing when history is off', async () => {
    const a = replica('devA', Date.now, effectiveRetention('off'))
    a.collection.set('k', 1, LOCAL_ORIGIN)
    await a.flush()
    expect((await readRecordHistory(a.db, 'notes', 'k')).versions).toEqual([])
  })

  it('reads the limit and the one version past it', async () => {
    let now = 1_800_000_000_000
    const a = replica('devA', () => now)
    for (let i = 0; i < 5; i++) {
      a.collection.set('k', { i }, LOCAL_ORIGIN)
      now += 1
    }
    await a.flush()
    const { versions, older } = await readRecordHistory(a.db, 'notes', 'k', { limit: 2 })
    expect(versions.map((v) => v.v)).toEqual([{ i: 4 }, { i: 3 }])
    expect(older?.v).toEqual({ i: 2 })
  })
})

describe('history settings and times', () => {
  it.each([
    ['50', { count: 50 }],
    ['30d', { days: 30 }],
    ['50,30d', { count: 50, days: 30 }],
    ['off', 'off'],
    ['default', null],
  ])('parses --history %s', (text, expected) => {
    expect(parseHistorySetting(text)).toEqual(expected)
  })

  it.each(['0', '-1', '3h', 'lots', '50,,'])('refuses --history %s with INVALID_ARGUMENT', (text) => {
    expect(() => parseHistorySetting(text)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('fills a partial setting with the defaults', () => {
    expect(effectiveRetention({ count: 5 })).toEqual({ off: false, count: 5, days: 90 })
    expect(effectiveRetention(undefined)).toEqual({ off: false, count: 100, days: 90 })
  })

  it('parses relative and ISO times', () => {
    const now = 1_800_000_000_000
    expect(parseTime('2h', now)).toBe(now - 2 * 3_600_000)
    expect(parseTime('3d', now)).toBe(now - 3 * DAY_MS)
    expect(parseTime('2026-12-01T10:00:00Z', now)).toBe(Date.parse('2026-12-01T10:00:00Z'))
    expect(parseTime(12345, now)).toBe(12345)
    expect(() => parseTime('yesterday', now)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })
})
