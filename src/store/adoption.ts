import { KitsyncError } from '../core/errors.js'
import { snapshotKey, storedFile, type BatchOp, type StoredSnapshot } from './doc-layout.js'
import { frame } from './framing.js'
import type { SnapshotFiles, SnapshotFileWrite } from './snapshot-files.js'

/** The first copy of a collection, stored while its owner checks it (see CollectionLog.adopt). */
export interface Adoption {
  /** The copy is good: it becomes the collection, with the rows derived from it (see CollectionLog.append). Resolves once it is stored. */
  keep(derived?: BatchOp[]): Promise<void>
  /** The copy is not good: what was written of it is removed. Resolves once it is. */
  drop(): Promise<void>
}

/** A copy being adopted, as its log queued it. */
export interface AdoptedCopy {
  update: Uint8Array
  /** Whether its owner kept it. */
  kept: Promise<boolean>
  /** Its snapshot file, already being written. */
  file: SnapshotFileWrite | undefined
}

/** What storing an adopted copy needs from the store (DocStore). */
export interface AdoptionStore {
  readonly files: SnapshotFiles | undefined
  batch(ops: BatchOp[]): Promise<void>
}

/**
 * Store an adopted copy (see CollectionLog.adopt) as the snapshot of `name` once its owner
 * keeps it, with `meta` (asked for once it is kept: the metadata and the rows derived from the
 * copy): its file (already being written) is referenced, or its framed bytes were put before.
 * A copy not kept leaves nothing behind and fails with PROTOCOL_ERROR.
 */
export async function storeAdopted(
  store: AdoptionStore,
  name: string,
  copy: AdoptedCopy,
  meta: BatchOp[] | (() => Promise<BatchOp[]>),
): Promise<StoredSnapshot> {
  const metaOps = async (): Promise<BatchOp[]> => (typeof meta === 'function' ? meta() : meta)
  const key = snapshotKey(name)
  const notKept = (): KitsyncError =>
    new KitsyncError('PROTOCOL_ERROR', `collection ${name}: the copy taken from a peer was not kept`, { details: { collection: name } })
  if (copy.file !== undefined) {
    const { ref, done } = copy.file
    try {
      await done
      if (!(await copy.kept)) throw notKept()
    } catch (err) {
      await store.files?.remove(ref.file).catch(() => undefined) // a file left behind is removed by the sweep at the next start
      throw err
    }
    const snap = storedFile(ref)
    await store.batch([...(await metaOps()), { type: 'put', key, value: snap.value }])
    return snap
  }
  const value = frame(copy.update)
  await store.batch([{ type: 'put', key, value }])
  if (!(await copy.kept)) {
    await store.batch([{ type: 'del', key }])
    throw notKept()
  }
  await store.batch(await metaOps())
  return { value, bytes: value.byteLength }
}
