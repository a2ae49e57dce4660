import type * as Y from 'yjs'

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
