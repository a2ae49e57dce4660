import * as Y from 'yjs'
import { KitsyncError } from '../core/errors.js'

/**
 * A peer's update passed on to the other sessions as soon as Yjs has integrated it, before the
 * document's observers and update listeners run: the record index and change events, the
 * derived rows and the write-ahead log of the host. A middle peer of a line used to pass an
 * update on only from its 'update' event, after all of those, so each hop added its whole
 * processing of the update (about 95% of it: integrating 1,000 records is a few ms, observing
 * and logging them some 20 ms) to the time the next peer got it. The forwarder's own
 * observers and durability do not gate the next hop; the next peer stores the update itself.
 *
 * What goes on is the update as received (a superset of what Yjs would emit here), so the
 * check that keeps loops in a mesh finite is the one Yjs gives the normal path: an update is
 * passed on only if it changed the document. It cannot change it a second time, so a cycle
 * of peers passes it around once. Two cases take the normal path (the 'update' event):
 * - the document holds structs or deletes waiting for ones it lacks: this update may complete
 *   them, and the update Yjs emits then holds more than the one received;
 * - decoding fails part way: nothing is passed on (a malformed update must not reach the
 *   other peers); applyPeerUpdate throws PROTOCOL_ERROR, and the session closes, as before.
 */

/** Marks, in a transaction's meta, that its update was passed on already: the engine does not queue it again. */
const PASSED_ON = Symbol('passed on')

/** Whether the update of this transaction went to the other sessions already (see applyPeerUpdate). */
export function wasPassedOn(tr: Y.Transaction): boolean {
  return tr.meta.get(PASSED_ON) === true
}

/** What a transaction changed in the document: the test Yjs makes before it emits an update. */
function changedDoc(tr: Y.Transaction): boolean {
  if (tr.deleteSet.clients.size > 0) return true
  for (const [client, clock] of tr.afterState) if (tr.beforeState.get(client) !== clock) return true
  return false
}

/**
 * Apply a peer's update to `doc` (of `collection`) with `origin` (its session) as Yjs's
 * applyUpdate does, calling `passOn(update)` once the update is integrated, before the
 * observers run, when it changed the document and nothing was waiting (see above). Returns
 * whether the document changed; throws PROTOCOL_ERROR if the update does not apply. Without
 * `passOn` (no other peer to pass it to), Yjs's applyUpdate alone.
 */
export function applyPeerUpdate(
  doc: Y.Doc,
  collection: string,
  update: Uint8Array,
  origin: unknown,
  passOn: ((update: Uint8Array) => void) | undefined,
): boolean {
  if (passOn === undefined) return applyOnly(doc, collection, update, origin)
  const nothingWaiting = doc.store.pendingStructs === null && doc.store.pendingDs === null
  let decoded = false
  let changed = false
  const early = (tr: Y.Transaction): void => {
    if (!decoded || tr.origin !== origin || !changedDoc(tr)) return
    changed = true
    if (!nothingWaiting) return
    tr.meta.set(PASSED_ON, true)
    passOn(update)
  }
  const onUpdate = (): void => {
    changed = true
  }
  doc.on('beforeObserverCalls', early)
  doc.on('update', onUpdate)
  try {
    // One transaction of our own around applyUpdate (which then runs inside it), so that
    // `decoded` tells, when the transaction ends, whether the whole update was read.
    Y.transact(
      doc,
      () => {
        Y.applyUpdate(doc, update, origin)
        decoded = true
      },
      origin,
      false,
    )
  } catch (err) {
    throw new KitsyncError('PROTOCOL_ERROR', `malformed update for ${collection}`, { cause: err })
  } finally {
    doc.off('beforeObserverCalls', early)
    doc.off('update', onUpdate)
  }
  return changed
}

/** Apply a peer's update that goes to no one else (see applyPeerUpdate). */
function applyOnly(doc: Y.Doc, collection: string, update: Uint8Array, origin: unknown): boolean {
  let changed = false
  const onUpdate = (): void => {
    changed = true
  }
  doc.on('update', onUpdate)
  try {
    Y.applyUpdate(doc, update, origin)
  } catch (err) {
    throw new KitsyncError('PROTOCOL_ERROR', `malformed update for ${collection}`, { cause: err })
  } finally {
    doc.off('update', onUpdate)
  }
  return changed
}
