import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { inTransaction, isEmptyDoc, transactionMeta } from '../../src/core/yjs-internals.js'

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
