import type * as Y from 'yjs'
import type { JsonValue } from './json.js'

/**
 * Units: named sub-documents of a collection, stored, loaded and synced apart from its records
 * (docs/design/folders.md section 3). A shared folder `NAME` keeps its manifest as the records of
 * the internal collection `_folder.NAME` (one record per file, keyed by fileId) and the content of
 * each text file as a unit of that collection: one Y.Doc per fileId. Binary files are blobs
 * addressed by their SHA-256.
 *
 * This is the seam between the folder layer (which only uses this interface) and the store and
 * sync layers (which implement it on the local workspace). A fake in memory implements it for
 * the folder layer's unit tests.
 */

/** A unit's id inside its collection: the fileId (base64url, 22 characters). */
export type UnitId = string

/** A local change of one unit: the update of a transaction already applied to its open document. */
export interface UnitUpdate {
  unit: UnitId
  /** Yjs v1 update (as the document's 'update' event gives it). */
  update: Uint8Array
}

/** A record write that goes in the same atomic batch as unit updates (the manifest record of a file). */
export interface UnitRecordWrite {
  key: string
  /** Fields merged into the record under the collection's kind rules; `null` deletes the record. */
  fields: Record<string, JsonValue> | null
}

/** A peer's update of a unit, applied to the unit's document (if open) and stored. */
export interface UnitRemoteUpdate {
  collection: string
  unit: UnitId
  update: Uint8Array
  /** Device id of the peer that sent it. */
  from: string
}

export interface UnitEvents {
  /** A peer's update of a unit was stored (and applied to its document when open). */
  'unit:update': UnitRemoteUpdate
  /** A blob arrived from a peer and was stored. */
  'blob:stored': { hash: string; size: number }
}

export interface Units {
  /**
   * The unit's document: the stored state loaded into a document made by `make` (so the caller's
   * gcFilter and shape apply), or `make()` as is when nothing is stored. The same Y.Doc object is
   * returned until `close`. Peers' updates are applied to it by the sync layer (origin: the sync
   * layer) before 'unit:update' is emitted.
   */
  open(collection: string, unit: UnitId, make: () => Y.Doc): Promise<Y.Doc>
  /**
   * `open` for several units of a collection: the ones not open yet are loaded together (one
   * read of the store for all), each its own document as `open` gives it. Optional: without it,
   * callers open one at a time.
   */
  openMany?(collection: string, units: readonly UnitId[], make: () => Y.Doc): Map<UnitId, Promise<Y.Doc>>
  /** Unload a unit's document; its stored state stays. */
  close(collection: string, unit: UnitId): void
  /**
   * Store local changes in one atomic batch, unit updates (already applied to documents from
   * `open`) with record writes, then send them to peers. Resolves once durable: an acknowledged
   * write survives kill -9. Rejects with a KitsyncError (e.g. STORAGE_FULL) and stores nothing.
   */
  commit(collection: string, updates: readonly UnitUpdate[], records?: readonly UnitRecordWrite[]): Promise<void>
  /** Ids of the units that have stored state in the collection. */
  list(collection: string): Promise<UnitId[]>
  /** Delete a unit's stored state (once no record refers to it). */
  drop(collection: string, unit: UnitId): Promise<void>
  /** Store a blob under its SHA-256 (lowercase hex); the hash is checked (DATA_CORRUPTION). */
  putBlob(hash: string, bytes: Uint8Array): Promise<void>
  /** A blob from the store, else fetched from connected peers; undefined when no one has it yet. */
  getBlob(hash: string, options?: { signal?: AbortSignal }): Promise<Uint8Array | undefined>
  on<K extends keyof UnitEvents>(event: K, listener: (payload: UnitEvents[K]) => void): () => void
}
