import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { isKitsyncError } from '../../src/core/errors.js'
import { Hlc } from '../../src/core/hlc.js'
import { RecordCollection, type RecordChange } from '../../src/core/record-collection.js'

const LOCAL = Symbol('local')

/** Two devices, each with its own doc, exchanging their full state both ways. */
function exchange(a: RecordCollection, b: RecordCollection): void {
  const ua = Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc))
  const ub = Y.encodeStateAsUpdate(b.doc, Y.encodeStateVector(a.doc))
  Y.applyUpdate(b.doc, ua, 'remote')
  Y.applyUpdate(a.doc, ub, 'remote')
}

/** A device whose clock stands still (ties between devices then go by node tag, deterministically). */
function device(clientID: number, now = 1_000): RecordCollection {
  const doc = new Y.Doc()
  doc.clientID = clientID
  return new RecordCollection('c', doc, { clock: new Hlc(`n${clientID}`, () => now) })
}

describe('RecordCollection', () => {
  it('stores objects, scalars and arrays, and replaces a record on set', () => {
    const c = device(1)
    c.set('a', { x: 1, y: [1, 2], z: { deep: true } }, LOCAL)
    c.set('n', 42, LOCAL)
    c.set('s', 'text', LOCAL)
    c.set('arr', [1, 'two', null], LOCAL)
    expect(c.get('a')).toEqual({ x: 1, y: [1, 2], z: { deep: true } })
    expect(c.get('n')).toBe(42)
    expect(c.get('arr')).toEqual([1, 'two', null])
    c.set('a', { x: 2 }, LOCAL)
    expect(c.get('a')).toEqual({ x: 2 })
    c.set('n', { now: 'object' }, LOCAL)
    expect(c.get('n')).toEqual({ now: 'object' })
    c.set('n', false, LOCAL)
    expect(c.get('n')).toBe(false)
    expect(c.keys()).toEqual(['a', 'arr', 'n', 's'])
    expect(c.size).toBe(4)
  })

  it('keeps an empty object as an existing record', () => {
    const c = device(1)
    c.set('e', {}, LOCAL)
    expect(c.has('e')).toBe(true)
    expect(c.get('e')).toEqual({})
  })

  it('sets one field and keeps the others', () => {
    const c = device(1)
    c.set('a', { x: 1, y: 2 }, LOCAL)
    c.set('a', 3, LOCAL, 'y')
    c.set('b', 'v', LOCAL, 'f')
    expect(c.get('a')).toEqual({ x: 1, y: 3 })
    expect(c.get('b')).toEqual({ f: 'v' })
  })

  it('deletes records and reports whether there was one', () => {
    const c = device(1)
    c.set('a', { x: 1 }, LOCAL)
    expect(c.delete('a', LOCAL)).toBe(true)
    expect(c.get('a')).toBeUndefined()
    expect(c.delete('a', LOCAL)).toBe(false)
    expect(c.size).toBe(0)
  })

  it('merges concurrent changes of different fields of the same record', () => {
    const a = device(1)
    const b = device(2)
    a.set('r', { title: 'one', status: 'open' }, LOCAL)
    exchange(a, b)
    a.set('r', 'renamed', LOCAL, 'title')
    b.set('r', 'closed', LOCAL, 'status')
    exchange(a, b)
    expect(a.get('r')).toEqual({ title: 'renamed', status: 'closed' })
    expect(b.get('r')).toEqual(a.get('r'))
  })

  it('merges fields of a record created concurrently on two devices', () => {
    const a = device(1)
    const b = device(2)
    a.set('r', 'from-a', LOCAL, 'x')
    b.set('r', 'from-b', LOCAL, 'y')
    exchange(a, b)
    expect(a.get('r')).toEqual({ x: 'from-a', y: 'from-b' })
    expect(b.get('r')).toEqual({ x: 'from-a', y: 'from-b' })
  })

  it('resolves concurrent writes of the same field the same way on every device, in any order', () => {
    const results = new Set<string>()
    for (const order of [0, 1]) {
      const a = device(1)
      const b = device(2)
      const c = device(3)
      a.set('r', 'a', LOCAL, 'f')
      b.set('r', 'b', LOCAL, 'f')
      if (order === 0) {
        exchange(a, b)
        exchange(b, c)
      } else {
        exchange(c, b)
        exchange(b, a)
        exchange(c, a)
      }
      exchange(a, c)
      const values = [a, b, c].map((d) => JSON.stringify(d.get('r')))
      expect(new Set(values).size).toBe(1)
      results.add(values[0] as string)
    }
    expect(results.size).toBe(1)
  })

  it('lets the later write by clock win, whatever the Yjs client ids', () => {
    for (const [early, late] of [
      [1, 2],
      [2, 1],
    ] as const) {
      const a = device(early, 1_000)
      const b = device(late, 2_000)
      b.set('r', 'later', LOCAL, 'f')
      a.set('r', 'earlier', LOCAL, 'f')
      exchange(a, b)
      expect([a.get('r'), b.get('r')]).toEqual([{ f: 'later' }, { f: 'later' }])
    }
  })

  it('refuses a record over the size limit and writes nothing', () => {
    const doc = new Y.Doc()
    const c = new RecordCollection('small', doc, { maxRecordBytes: 100 })
    c.set('a', { x: 1 }, LOCAL)
    const before = Y.encodeStateAsUpdate(doc)
    let caught: unknown
    try {
      c.set('a', { x: 'y'.repeat(200) }, LOCAL)
    } catch (err) {
      caught = err
    }
    expect(isKitsyncError(caught, 'RECORD_TOO_LARGE')).toBe(true)
    expect((caught as { details: { collection: string } }).details.collection).toBe('small')
    expect(() => c.set('a', 'z'.repeat(200), LOCAL, 'x')).toThrow(/over the limit/)
    expect(Y.encodeStateAsUpdate(doc)).toEqual(before)
  })

  it('refuses keys with control characters and empty field names', () => {
    const c = device(1)
    expect(() => c.set('', 1, LOCAL)).toThrow(/invalid record key/)
    expect(() => c.set('a\u0000b', 1, LOCAL)).toThrow(/invalid record key/)
    expect(() => c.set('a', 1, LOCAL, '')).toThrow(/invalid field name/)
  })

  it('keeps fields named like Object.prototype members, and refuses one named __proto__', () => {
    const a = device(1)
    const b = device(2)
    a.set('k', { constructor: 'c', toString: 't', valueOf: 1, plain: 2 }, LOCAL)
    a.set('k', 'h', LOCAL, 'hasOwnProperty')
    exchange(a, b)
    const expected = { constructor: 'c', hasOwnProperty: 'h', plain: 2, toString: 't', valueOf: 1 }
    expect(a.get('k')).toEqual(expected)
    expect(b.get('k')).toEqual(expected)
    expect(() => a.set('k', 1, LOCAL, '__proto__')).toThrow(/__proto__/)
  })

  it('emits one change per touched record with the transaction origin', () => {
    const a = device(1)
    const b = device(2)
    const seen: { key: string; value: unknown; origin: unknown }[] = []
    b.onChange((changes) => seen.push(...changes))
    a.set('r', { x: 1, y: 2 }, LOCAL)
    exchange(a, b)
    expect(seen).toEqual([{ key: 'r', value: { x: 1, y: 2 }, origin: 'remote' }])
    const local: unknown[] = []
    a.onChange((changes) => local.push(...changes.map((ch) => ch.origin)))
    a.delete('r', LOCAL)
    expect(local).toEqual([LOCAL])
  })

  it('collapsing a merged conflict is no change: listeners hear of the merge once, with its origin', () => {
    // Issue 19 item 11: the collapse after a merge was reported as a second, local change.
    const a = device(1, 1_000)
    const b = device(2, 2_000)
    a.set('r', 1, LOCAL, 'x')
    b.set('r', 2, LOCAL, 'x')
    const seen: { key: string; value: unknown; origin: unknown }[] = []
    b.onChange((changes) => seen.push(...changes.map((c) => ({ key: c.key, value: c.value, origin: c.origin }))))
    const conflicts: unknown[] = []
    b.onConflict((found) => conflicts.push(...found))
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc), 'remote')
    expect(conflicts).toHaveLength(1)
    b.collapse('r', LOCAL)
    expect(b.get('r')).toEqual({ x: 2 })
    expect(seen).toEqual([{ key: 'r', value: { x: 2 }, origin: 'remote' }])
    // Inside a larger transaction its writes belong to that transaction, which is reported.
    b.doc.transact(() => b.set('s', 1, LOCAL), LOCAL)
    expect(seen.at(-1)).toEqual({ key: 's', value: 1, origin: LOCAL })
  })

  it('does not grow the document when a value is rewritten unchanged', () => {
    const c = device(1)
    c.set('a', { x: 1, y: 'same' }, LOCAL)
    const size = Y.encodeStateAsUpdate(c.doc).byteLength
    let updates = 0
    c.doc.on('update', () => updates++)
    c.set('a', { x: 1, y: 'same' }, LOCAL)
    expect(updates).toBe(0)
    expect(Y.encodeStateAsUpdate(c.doc).byteLength).toBe(size)
  })
})

describe('change events and memory', () => {
  it('a change kept by a listener does not keep its Yjs transaction alive', async () => {
    // Forcing a full collection from a test: V8 exposes gc() to code compiled after the flag.
    const { setFlagsFromString } = await import('node:v8')
    const { runInNewContext } = await import('node:vm')
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const c = new RecordCollection('notes')
    const kept: RecordChange[][] = []
    c.onChange((changes) => kept.push(changes))
    let transaction: WeakRef<Y.Transaction> | undefined
    c.doc.on('afterTransaction', (tr: Y.Transaction) => {
      transaction = new WeakRef(tr)
    })
    c.doc.transact(() => c.set('a', { v: 1 }, LOCAL), LOCAL)
    // A WeakRef holds its target until the job that made it has ended.
    await new Promise((resolve) => setTimeout(resolve, 0))
    gc()
    expect(kept).toHaveLength(1)
    expect(kept[0]?.[0]?.value).toEqual({ v: 1 })
    expect(transaction?.deref()).toBeUndefined()
  })
})
