import { checkpointKey, parseJson, rowRange } from './doc-layout.js'
import { unframe } from './framing.js'
import { collectionHistoryRange } from './history-rows.js'
import type { BinaryLevel } from './level.js'
import { rowOf } from './record-rows.js'
import { BLOB_RANGE } from './unit-layout.js'

/**
 * Blob collection. Blobs (`o!HASH`, store/unit-store.ts) hold binary files' content and the text
 * of files' older versions (daemon/folder-version-text.ts); nothing else deletes them, so without
 * this pass every version ever captured stays on disk after history retention dropped it.
 *
 * A blob is dropped when no index row (a live or deleted file of a shared folder) and no kept
 * history entry of any folder manifest names its hash, and this process did not store it in the
 * last BLOB_GRACE_MS (a capture stores the blob before the batch of the record that names it;
 * UnitStore.dropBlobs checks that, excluding puts while it deletes).
 * The pass reads the rows, not the documents: a manifest without a checkpoint (rows being
 * rebuilt) stops the pass, and nothing is dropped until the next one.
 */

/** A blob stored this recently is kept whatever names it (its record may be on its way). */
export const BLOB_GRACE_MS = 10 * 60_000
/** Blob deletes per LevelDB batch (the pass yields between batches). */
const DROP_SLICE = 256

function addHashes(value: unknown, into: Set<string>): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return
  const v = value as { hash?: unknown; deleted?: unknown }
  if (typeof v.hash === 'string' && v.hash !== '') into.add(v.hash)
  if (typeof v.deleted === 'object' && v.deleted !== null) addHashes(v.deleted, into)
}

/** The hashes the folder manifests `collections` name in their rows and history; undefined when a manifest's rows are not current. */
export async function blobsInUse(db: BinaryLevel, collections: readonly string[]): Promise<Set<string> | undefined> {
  const inUse = new Set<string>()
  for (const name of collections) {
    if ((await db.get(checkpointKey(name))) === undefined) return undefined
    for await (const value of db.values(rowRange(name))) {
      const row = rowOf(value)
      if (row === undefined) return undefined
      addHashes(row.v, inUse)
    }
    for await (const value of db.values(collectionHistoryRange(name))) {
      const payload = unframe(value)
      if (payload === undefined) return undefined
      addHashes((parseJson(payload) as { v?: unknown }).v, inUse)
    }
  }
  return inUse
}

export interface BlobPrune {
  /** Blobs deleted. */
  dropped: number
  /** Blobs left (named, or stored within the grace). */
  kept: number
}

/**
 * Delete the blobs no folder manifest of `collections` names (see above); undefined when the
 * pass did not run (a manifest's rows not current). Call it with every folder manifest of the
 * store: a blob named only by a manifest left out would go.
 */
export async function pruneBlobs(
  db: BinaryLevel,
  collections: readonly string[],
  units: { dropBlobs(hashes: readonly string[]): Promise<string[]> },
): Promise<BlobPrune | undefined> {
  const inUse = await blobsInUse(db, collections)
  if (inUse === undefined) return undefined
  const out: BlobPrune = { dropped: 0, kept: 0 }
  let slice: string[] = []
  const flush = async (): Promise<void> => {
    if (slice.length === 0) return
    const hashes = slice
    slice = []
    const dropped = await units.dropBlobs(hashes)
    out.dropped += dropped.length
    out.kept += hashes.length - dropped.length
    await new Promise((resolve) => setImmediate(resolve))
  }
  // Keys only: the blobs themselves (files' content) are not read.
  for await (const key of db.keys(BLOB_RANGE)) {
    const hash = key.slice(2)
    if (inUse.has(hash)) out.kept++
    else slice.push(hash)
    if (slice.length >= DROP_SLICE) await flush()
  }
  await flush()
  return out
}
