import type * as Y from 'yjs'
import type { KitsyncError } from '../core/errors.js'

/** What a trusted device's blind client is given (the workspace), its snapshot policy and its events. */

export interface BlindClientHost {
  readonly workspaceId: string
  collectionNames(): string[]
  /**
   * May this collection go to the store, and be taken from it? (false for local-only ones.)
   * Asked at each upload and download, so a collection made local-only while the device runs
   * stops at once, also with changes noted before. Absent: every collection.
   */
  shares?(name: string): boolean
  openDoc(name: string): Promise<Y.Doc>
  flushDoc?(name: string): Promise<void>
  /** Device-local JSON values (LocalWorkspace getLocal/putLocal). */
  getLocal(key: string): Promise<unknown>
  putLocal(key: string, value: unknown): Promise<void>
  /** The newest workspace key, or undefined before the device has one. */
  currentKey(): { epoch: number; key: Uint8Array } | undefined
  key(epoch: number): Uint8Array | undefined
  /** Shared folders' content (units and blobs); absent: collections only. */
  units?: BlindUnitHost
}

/** What a store holds of one unit, as far as this device knows. */
export interface UnitMark {
  /** State vector of what the store holds (learnt from uploads and downloads). */
  sv: Uint8Array
  /** Digest of this device's state of the unit when the store was last known to hold all of it (-1: never). */
  digest: number
}

/**
 * A shared folder's content as the blind client sees it: the units of its manifest collection
 * (one Y.Doc per text file) and the blobs its records name (binary files), with what each store
 * holds of them (device-local, one row per unit and blob: an upload writes the rows of what it
 * carried, never a map of every unit).
 */
export interface BlindUnitHost {
  /**
   * Collections whose units and blobs go to the store (and are taken from it): shared folders
   * this device syncs. Asked at each upload and download: a local-only or deselected folder's
   * content never leaves the device, not even encrypted.
   */
  shares(collection: string): boolean
  /** The shared folders' manifest collections held here (each one passes `shares`). */
  collections(): string[]
  /** Every stored unit of a collection, with the digest of its state (state vector and delete set). */
  digests(collection: string): Promise<{ unit: string; digest: number }[]>
  /** A unit's stored state as one update, and its digest; undefined when nothing is stored. */
  state(collection: string, unit: string): Promise<{ update: Uint8Array; digest: number } | undefined>
  /** Apply the store's update of a unit as a peer's (stored, applied to its open document, announced). */
  apply(collection: string, unit: string, update: Uint8Array, from: string): Promise<void>
  /** SHA-256 (hex) of the blobs the collection's live records name: its binary files' content. */
  blobsOf(collection: string): Promise<string[]>
  /** A blob held on this device (never fetched from a peer for this). */
  blob(hash: string): Promise<Uint8Array | undefined>
  /** Store a blob from the store (its hash is checked) and announce it. */
  putBlob(hash: string, bytes: Uint8Array): Promise<void>
  loadMarks(store: string, collection: string): Promise<Map<string, UnitMark>>
  saveMarks(store: string, collection: string, marks: Iterable<[string, UnitMark]>): Promise<void>
  loadBlobMarks(store: string): Promise<Set<string>>
  saveBlobMarks(store: string, hashes: Iterable<string>): Promise<void>
  /** A store never seen (or one that lost its data): forget what it was known to hold. */
  clearMarks(store: string): Promise<void>
}

export interface SnapshotPolicy {
  /** Upload a snapshot once the store holds this many entries since the last one... */
  entries: number
  /** ...or this many ciphertext bytes. */
  bytes: number
  /**
   * Wait a random time up to this many milliseconds once past a threshold, then check again
   * (absent: 0). Devices do not hear of each other's snapshots: when many come live together
   * on a store past its thresholds (a VPS restart, a fleet joining), each would upload a whole
   * snapshot at the same moment (20 devices: ~130 MB more on the VPS); spread out, the store
   * takes one at a time and drops the older ones.
   */
  jitterMs?: number
}

export const DEFAULT_SNAPSHOT_POLICY: SnapshotPolicy = { entries: 1000, bytes: 8 * 1024 * 1024, jitterMs: 5000 }

export interface BlindClientEvents {
  /** Catch-up with a store finished: everything it held up to `head` is applied. */
  live: { peerId: string; head: number }
  /** Entries from the store were merged. */
  applied: { peerId: string; entries: number; cursor: number }
  /** The store acknowledged an upload. */
  uploaded: { peerId: string; seq: number }
  /** A session with a store ended. */
  closed: { peerId: string; error?: KitsyncError }
  /** An entry that does not decrypt (damaged, or not made by a member): skipped. */
  skipped: { peerId: string; seq: number; reason: string }
}

/** What the device keeps per store, on its own (`blind:<peerId>` in the device-local values). */
export interface StoreRecord {
  storeId: string
  cursor: number
  /** Base64 state vectors by collection: what the store holds, as far as this device knows. */
  sv: Record<string, string>
  /** Collections with local changes (deletes too) not yet acknowledged by this store. */
  dirty: string[]
  /**
   * This device skipped some of what the store holds (a collection or folder it keeps
   * local-only or does not select): it never uploads a snapshot, which would drop that from the store.
   */
  partial?: boolean
}

/**
 * What a session needs from the client that owns it (BlindClient implements it): a narrow seam,
 * so the session does not import the client and tests could drive a session alone.
 */
export interface BlindSessionOwner {
  readonly host: BlindClientHost
  readonly policy: SnapshotPolicy
  /** Whether a collection goes to (and comes from) the store. */
  shares(name: string): boolean
  /** Open a collection's document and watch it for changes to upload. */
  doc(name: string): Promise<Y.Doc>
  emit<K extends keyof BlindClientEvents>(event: K, data: BlindClientEvents[K]): void
  /** The session ended (after its last frame; its state is being saved). */
  removed(session: { readonly peerId: string }, error?: KitsyncError): void
}
