import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import {
  appendEntry,
  deleteEntry,
  forEachAdded,
  forEachDeleted,
  forEachEntry,
  inTransaction,
  isEmptyDoc,
  isRightOf,
  nextEntryId,
  rootHasContent,
  transactionFollows,
  transactionMeta,
  type EntryId,
} from '../../src/core/yjs-internals.js'

/**
 * The private Yjs fields that src/core/yjs-internals.ts reads, checked on a real Y.Doc: when a
 * Yjs upgrade renames one or changes what it holds, this fails, not a merge somewhere else.
 */

/** Three updates of one client: insert x, insert y (needs x), delete x (a delete set only). */
function threeUpdates(): Uint8Array[] {
  const doc = new Y.Doc()
  doc.clientID = 7
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  doc.getArray('l').insert(0, ['x'])
  doc.getArray('l').insert(1, ['y'])
  doc.getArray('l').delete(0, 1)
  return updates
}

describe('doc._transaction (inTransaction, transactionMeta)', () => {
  it('is null outside a transaction', () => {
    const doc = new Y.Doc()
    expect('_transaction' in doc).toBe(true)
    expect(doc._transaction).toBeNull()
    expect(inTransaction(doc)).toBe(false)
    expect(transactionMeta(doc)).toBeUndefined()
  })

  it('is the running transaction inside doc.transact, with its meta map, and null again after', () => {
    const doc = new Y.Doc()
    let seen: Y.Transaction | undefined
    doc.transact((tr) => {
      seen = tr
      expect(doc._transaction).toBe(tr)
      expect(tr).toBeInstanceOf(Y.Transaction)
      expect(tr.meta).toBeInstanceOf(Map)
      expect(inTransaction(doc)).toBe(true)
      expect(transactionMeta(doc)).toBe(tr.meta)
      doc.getMap('m').set('k', 1)
    }, 'origin')
    expect(seen).toBeDefined()
    expect(inTransaction(doc)).toBe(false)
    expect(transactionMeta(doc)).toBeUndefined()
  })

  it('is the outer transaction inside a nested doc.transact (a nested one joins it)', () => {
    const doc = new Y.Doc()
    doc.transact((outer) => {
      doc.transact((inner) => {
        expect(inner).toBe(outer)
        expect(transactionMeta(doc)).toBe(outer.meta)
      }, 'inner origin')
      expect(outer.origin).toBe('outer origin')
    }, 'outer origin')
  })

  it('carries a mark set through transactionMeta to the transaction observers see', () => {
    const doc = new Y.Doc()
    const mark = Symbol('mark')
    const marked: boolean[] = []
    doc.getMap('m').observe((_event, tr) => marked.push(tr.meta.has(mark)))
    doc.transact(() => {
      transactionMeta(doc)?.set(mark, true)
      doc.getMap('m').set('a', 1)
    })
    doc.getMap('m').set('b', 2)
    expect(marked).toEqual([true, false])
  })
})

describe('doc._transactionCleanups (transactionFollows)', () => {
  it("in each 'update': true while a transaction an observer started follows, false for the last of the turn", () => {
    const doc = new Y.Doc()
    const list = doc.getArray<string>('l')
    list.observe((_e, tr) => {
      // The first change starts a second transaction from its observer (as a dedup of concurrent entries does).
      if (tr.origin === 'first') doc.transact(() => list.insert(1, ['second']), 'second')
    })
    const seen: [unknown, boolean, number][] = []
    doc.on('update', (_u: Uint8Array, origin: unknown, _d: Y.Doc, tr: Y.Transaction) => seen.push([origin, transactionFollows(doc, tr), list.length]))
    doc.transact(() => list.insert(0, ['first']), 'first')
    // At the first 'update' the second transaction's insert is in the document already.
    expect(seen).toEqual([
      ['first', true, 2],
      ['second', false, 2],
    ])
    doc.transact(() => list.insert(0, ['alone']), 'alone')
    expect(seen[2]).toEqual(['alone', false, 3])
  })
})

describe('doc.store.clients / pendingStructs / pendingDs (isEmptyDoc)', () => {
  it('a new document: no clients, nothing pending', () => {
    const doc = new Y.Doc()
    expect(doc.store.clients).toBeInstanceOf(Map)
    expect(doc.store.clients.size).toBe(0)
    expect(doc.store.pendingStructs).toBeNull()
    expect(doc.store.pendingDs).toBeNull()
    expect(isEmptyDoc(doc)).toBe(true)
  })

  it('a document with structs: a client entry holding them', () => {
    const doc = new Y.Doc()
    doc.getMap('m').set('k', 1)
    expect(doc.store.clients.size).toBe(1)
    expect(doc.store.clients.get(doc.clientID)?.length).toBe(1)
    expect(isEmptyDoc(doc)).toBe(false)
  })

  it('structs waiting for missing ones: pendingStructs holds them, clients stays empty', () => {
    const [, second] = threeUpdates()
    const doc = new Y.Doc()
    Y.applyUpdate(doc, second as Uint8Array)
    expect(doc.store.clients.size).toBe(0)
    expect(doc.store.pendingStructs).not.toBeNull()
    expect(doc.store.pendingStructs?.missing).toBeInstanceOf(Map)
    expect(doc.store.pendingStructs?.missing.get(7)).toBe(0)
    expect(doc.store.pendingStructs?.update).toBeInstanceOf(Uint8Array)
    expect(isEmptyDoc(doc)).toBe(false)
  })

  it('deletes of structs not yet here: pendingDs holds them, clients stays empty', () => {
    const [, , third] = threeUpdates()
    const doc = new Y.Doc()
    Y.applyUpdate(doc, third as Uint8Array)
    expect(doc.store.clients.size).toBe(0)
    expect(doc.store.pendingStructs).toBeNull()
    expect(doc.store.pendingDs).toBeInstanceOf(Uint8Array)
    expect(isEmptyDoc(doc)).toBe(false)
  })

  it('once the missing structs arrive, nothing is pending', () => {
    const updates = threeUpdates()
    const doc = new Y.Doc()
    for (const u of [...updates].reverse()) Y.applyUpdate(doc, u)
    expect(doc.store.pendingStructs).toBeNull()
    expect(doc.store.pendingDs).toBeNull()
    expect(doc.getArray('l').toArray()).toEqual(['y'])
    expect(isEmptyDoc(doc)).toBe(false)
  })
})

describe('array entries by Yjs id (record-kv.ts: _start, _map, item.right, store.clients, delete sets)', () => {
  const entries = (a: Y.Array<string>): [unknown, EntryId][] => {
    const out: [unknown, EntryId][] = []
    forEachEntry(a, (v, id) => out.push([v, id]))
    return out
  }

  it('rootHasContent: a root named by an applied update, before getMap/getArray, holding items or not', () => {
    const src = new Y.Doc()
    src.getArray('a').insert(0, [1])
    src.getMap('m').set('k', 1)
    const doc = new Y.Doc()
    expect(rootHasContent(doc, 'a')).toBe(false)
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(src))
    expect(rootHasContent(doc, 'a')).toBe(true)
    expect(rootHasContent(doc, 'm')).toBe(true)
    expect(rootHasContent(doc, 'other')).toBe(false)
    doc.getArray('empty')
    expect(rootHasContent(doc, 'empty')).toBe(false)
  })

  it('nextEntryId is the id a push gets; forEachEntry gives each value of merged items with its own id', () => {
    const doc = new Y.Doc()
    doc.clientID = 5
    const a = doc.getArray<string>('a')
    const ids: EntryId[] = []
    for (const v of ['x', 'y', 'z']) {
      ids.push(nextEntryId(doc))
      a.push([v])
    }
    expect(ids).toEqual([
      { client: 5, clock: 0 },
      { client: 5, clock: 1 },
      { client: 5, clock: 2 },
    ])
    // The three pushes merged into one item; each value keeps its id.
    expect(a._start?.right ?? null).toBeNull()
    expect(entries(a)).toEqual([
      ['x', ids[0]],
      ['y', ids[1]],
      ['z', ids[2]],
    ])
  })

  it('deleteEntry removes one value of a merged item, and forEachDeleted/forEachAdded see exactly what a transaction did', () => {
    const doc = new Y.Doc()
    doc.clientID = 5
    const a = doc.getArray<string>('a')
    a.push(['x'])
    a.push(['y'])
    a.push(['z'])
    const seen: { added: string[]; deleted: string[] }[] = []
    const other = new Y.Doc()
    const b = other.getArray<string>('a')
    b.observe((_e, tr) => {
      const added: string[] = []
      const deleted: string[] = []
      forEachAdded(tr, b, (v) => added.push(v as string))
      forEachDeleted(tr, b, (v) => deleted.push(v as string))
      seen.push({ added, deleted })
    })
    Y.applyUpdate(other, Y.encodeStateAsUpdate(doc))
    const sv = Y.encodeStateVector(doc)
    doc.transact((tr) => {
      deleteEntry(tr, { client: 5, clock: 1 })
      a.push(['w'])
    })
    expect(a.toArray()).toEqual(['x', 'z', 'w'])
    Y.applyUpdate(other, Y.encodeStateAsUpdate(doc, sv))
    expect(b.toArray()).toEqual(['x', 'z', 'w'])
    expect(seen).toEqual([
      { added: ['x', 'y', 'z'], deleted: [] },
      { added: ['w'], deleted: ['y'] },
    ])
  })

  it('isRightOf orders two entries as the array does, within one item and across items', () => {
    const doc = new Y.Doc()
    doc.clientID = 1
    const a = doc.getArray<string>('a')
    a.push(['p'])
    a.push(['q'])
    const other = new Y.Doc()
    other.clientID = 2
    Y.applyUpdate(other, Y.encodeStateAsUpdate(doc))
    other.getArray<string>('a').push(['r'])
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(other))
    const p = { client: 1, clock: 0 }
    const q = { client: 1, clock: 1 }
    const r = { client: 2, clock: 0 }
    expect(isRightOf(doc, q, p)).toBe(true)
    expect(isRightOf(doc, p, q)).toBe(false)
    expect(isRightOf(doc, r, p)).toBe(true)
    expect(isRightOf(doc, p, r)).toBe(false)
    expect(isRightOf(doc, r, q)).toBe(true)
  })

  it('appendEntry adds a binary item at the end (after remote items too), unmerged with its left, and drops stale search markers', () => {
    const doc = new Y.Doc()
    doc.clientID = 3
    const a = doc.getArray<Uint8Array>('a')
    let tail: EntryId | undefined
    doc.transact((tr) => {
      tail = appendEntry(tr, a, new Uint8Array([1]), tail)
      tail = appendEntry(tr, a, new Uint8Array([2]), tail)
    })
    expect(tail).toEqual({ client: 3, clock: 1 })
    // A remote item lands after the tail: the next append goes after it.
    const other = new Y.Doc()
    other.clientID = 4
    Y.applyUpdate(other, Y.encodeStateAsUpdate(doc))
    other.getArray<Uint8Array>('a').push([new Uint8Array([3])])
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(other))
    a.get(0) // makes a search marker
    doc.transact((tr) => {
      tail = appendEntry(tr, a, new Uint8Array([4]), tail)
    })
    expect(a.toArray().map((b) => b[0])).toEqual([1, 2, 3, 4])
    expect(a.length).toBe(4)
    expect(a.get(3)?.[0]).toBe(4)
    // Binary items of one writer stay separate items while live.
    expect(a._start?.right).not.toBeNull()
    expect(a._start?.length).toBe(1)
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
    expect(
      copy
        .getArray<Uint8Array>('a')
        .toArray()
        .map((b) => b[0]),
    ).toEqual([1, 2, 3, 4])
  })
})
