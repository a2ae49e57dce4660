import * as Y from 'yjs'
import { createID, findIndexSS, getItem, getItemCleanStart, getState } from 'yjs'

/**
 * The only module that reads private fields of Yjs (checked against yjs 13.6.33). Each one is
 * here because the public API has no equivalent; test/unit/yjs-internals.test.ts fails if an
 * upgrade renames a field or changes what it holds, so the upgrade is caught here and not as a
 * wrong answer somewhere in the engine. Public API (Y.Skip, Y.encodeStateVector, ...) is used
 * directly everywhere else.
 */

/**
 * Is a transaction of this document running (are we inside `doc.transact`)? Yjs has no public
 * accessor. RecordCollection needs it twice: inside a transaction its observers have not run
 * yet, so its index is stale and an answer must be worked out from the slots; and a write
 * inside a transaction joins it (its origin stands) instead of opening a nested one. Field:
 * `doc._transaction`, the running Transaction or null.
 */
export function inTransaction(doc: Y.Doc): boolean {
  return doc._transaction !== null
}

/**
 * Inside the 'update' event of `tr`: does another transaction follow it in this turn (one an
 * observer of `tr` started)? Its changes are in the document already, its observers and
 * 'update' still to come. Field: `doc._transactionCleanups`, the transactions whose cleanup
 * (observers, then 'update') runs in this turn, in order.
 */
export function transactionFollows(doc: Y.Doc, tr: Y.Transaction): boolean {
  const cleanups = doc._transactionCleanups
  return cleanups.length > 0 && cleanups[cleanups.length - 1] !== tr
}

/**
 * The `meta` map of the running transaction (undefined outside one). `Transaction.meta` is
 * public and `doc.transact` hands the transaction to its callback, but RecordCollection marks
 * its housekeeping transactions (so their updates are told apart from the user's writes) from
 * a callback several calls deep that is not given it; the `beforeTransaction` event runs for
 * every transaction, not only the one to mark. Field: `doc._transaction.meta`.
 */
export function transactionMeta(doc: Y.Doc): Map<unknown, unknown> | undefined {
  return doc._transaction?.meta
}

/**
 * Does the document hold nothing at all: no structs, and no structs or deletes waiting for
 * missing ones? After applying updates to such a document, its state vector is exactly the
 * clocks of those updates (the blind client uses that to skip decoding each update twice). The
 * public state vector says nothing of pending structs and deletes, which apply later and would
 * make the conclusion wrong. Fields: `doc.store.clients` (Map client -> structs),
 * `doc.store.pendingStructs` and `doc.store.pendingDs` (null when nothing waits).
 */
export function isEmptyDoc(doc: Y.Doc): boolean {
  return doc.store.pendingStructs === null && doc.store.pendingDs === null && doc.store.clients.size === 0
}

/** A Yjs id (client, clock) of one array entry: stable across splits and merges of its item. */
export interface EntryId {
  client: number
  clock: number
}

/**
 * Does a root type of the document hold anything (a live or deleted item)? Applying an update
 * creates the root types it names as plain AbstractTypes, before anyone calls getMap/getArray:
 * this tells which layout a collection's document holds (record-layout.ts). Fields:
 * `doc.share` (public), `type._start` (first item of a list) and `type._map` (map entries).
 */
export function rootHasContent(doc: Y.Doc, name: string): boolean {
  const type = doc.share.get(name)
  return type !== undefined && (type._start !== null || type._map.size > 0)
}

/** The id the next item this document's own client creates will get (`getState` of its client). */
export function nextEntryId(doc: Y.Doc): EntryId {
  return { client: doc.clientID, clock: getState(doc.store, doc.clientID) }
}

/**
 * Every live entry of an array, left to right, with its id. A pushed entry becomes one value
 * of an item, and Yjs merges consecutive items of one client, so an item holds entries
 * `clock, clock + 1, ...`. Fields: `type._start`, `item.right`, `item.content`.
 */
export function forEachEntry<E>(array: Y.AbstractType<E>, fn: (value: unknown, id: EntryId) => void): void {
  for (let item = array._start; item !== null; item = item.right) {
    if (item.deleted || !item.countable) continue
    const values = item.content.getContent()
    for (let i = 0; i < values.length; i++) fn(values[i], { client: item.id.client, clock: item.id.clock + i })
  }
}

/**
 * The live entries a transaction added to `parent`, without the O(n) walk of `event.changes`:
 * the items of each client between the transaction's before and after state. Fields:
 * `doc.store.clients` (client -> structs sorted by clock), `Transaction.beforeState/afterState`.
 */
export function forEachAdded<E>(tr: Y.Transaction, parent: Y.AbstractType<E>, fn: (value: unknown, id: EntryId) => void): void {
  for (const [client, after] of tr.afterState) {
    const before = tr.beforeState.get(client) ?? 0
    if (after <= before) continue
    const structs = tr.doc.store.clients.get(client)
    if (structs === undefined) continue
    for (let i = findIndexSS(structs, before); i < structs.length; i++) {
      const s = structs[i] as Y.Item | Y.AbstractStruct
      if (s.id.clock >= after) break
      if (!(s instanceof Y.Item) || s.parent !== parent || s.deleted || !s.countable) continue
      const values = s.content.getContent()
      for (let j = 0; j < values.length; j++) fn(values[j], { client, clock: s.id.clock + j })
    }
  }
}

/**
 * The entries of `parent` that a transaction deleted (its delete set), read without splitting
 * items. Called in an observer, before Yjs garbage-collects their content. Fields:
 * `Transaction.deleteSet.clients` (client -> [{clock, len}]), `doc.store.clients`.
 */
export function forEachDeleted<E>(tr: Y.Transaction, parent: Y.AbstractType<E>, fn: (value: unknown, id: EntryId) => void): void {
  for (const [client, ranges] of tr.deleteSet.clients) {
    const structs = tr.doc.store.clients.get(client)
    if (structs === undefined) continue
    for (const { clock, len } of ranges) {
      const end = clock + len
      for (let i = findIndexSS(structs, clock); i < structs.length; i++) {
        const s = structs[i] as Y.Item | Y.AbstractStruct
        if (s.id.clock >= end) break
        if (!(s instanceof Y.Item) || s.parent !== parent || !s.countable) continue
        const values = s.content.getContent()
        const from = Math.max(0, clock - s.id.clock)
        const to = Math.min(values.length, end - s.id.clock)
        for (let j = from; j < to; j++) fn(values[j], { client, clock: s.id.clock + j })
      }
    }
  }
}

/**
 * Delete the one entry `id` in the running transaction, splitting its item around it: O(log n)
 * instead of finding its index by a walk of the array. Uses Yjs's exported but undocumented
 * `getItemCleanStart` and `Item.delete`.
 */
export function deleteEntry(tr: Y.Transaction, id: EntryId): void {
  const item = getItemCleanStart(tr, createID(id.client, id.clock))
  if (item.deleted) return
  if (item.length > 1) getItemCleanStart(tr, createID(id.client, id.clock + 1))
  item.delete(tr)
}

/**
 * Is entry `a` to the right of entry `b` in their array? Both are walked to the right in turn:
 * the one on the left meets the other, or the one on the right meets the end first. Costs the
 * items between them or after the rightmost, whichever is fewer (both near the end when two
 * devices pushed the same key concurrently), never the whole array. Fields: `item.right`.
 */
export function isRightOf(doc: Y.Doc, a: EntryId, b: EntryId): boolean {
  const ia = getItem(doc.store, createID(a.client, a.clock)) as Y.Item
  const ib = getItem(doc.store, createID(b.client, b.clock)) as Y.Item
  if (ia === ib) return a.clock > b.clock
  let pa: Y.Item | null = ia
  let pb: Y.Item | null = ib
  for (;;) {
    pa = pa.right
    if (pa === ib) return false
    if (pa === null) return true
    pb = pb.right
    if (pb === ia) return true
    if (pb === null) return false
  }
}

/**
 * Insert one binary entry at the end of an array in the running transaction, and return its
 * id. `after` is the id of an entry at or near the end (the last one this function added):
 * the walk to the end starts there, so it costs the items added after it, not the array.
 * `Y.Array.push` and `insert(length)` walk from the start or from a search marker, which made
 * every write O(n). Builds the Item as Yjs's own `typeListInsertGenericsAfter` does (origin:
 * the left item's last id) and drops the array's search markers, which this insert does not
 * update. Fields: `type._start`, `item.right`, `item.lastId`, `type._searchMarker`; the Item
 * and ContentBinary constructors (exported, not documented).
 */
export function appendEntry(tr: Y.Transaction, array: Y.Array<Uint8Array>, bytes: Uint8Array, after: EntryId | undefined): EntryId {
  let left: Y.Item | null = null
  if (after !== undefined) {
    const s = getItem(tr.doc.store, createID(after.client, after.clock))
    if (s instanceof Y.Item && s.parent === array) left = s
  }
  if (left === null) left = array._start
  if (left !== null) while (left.right !== null) left = left.right
  const id = nextEntryId(tr.doc)
  const item = new Y.Item(createID(id.client, id.clock), left, left?.lastId ?? null, null, null, array, null, new Y.ContentBinary(bytes))
  item.integrate(tr, 0)
  if (array._searchMarker !== null) array._searchMarker.length = 0
  return id
}
