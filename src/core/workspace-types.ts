import type { FolderChangeEvent, FolderConflictEvent } from './folder-types.js'
import type { HistoryEntry, HistoryOptions, HistoryRetention, HistorySetting, RestoreResult, RestoreTarget } from './history-types.js'
import type { JsonValue } from './json.js'
import type { SelfRevocation } from './membership.js'
import type { GitExportOptions, GitExportReport, ImportOptions, ImportReport, ImportSource } from './transfer-types.js'
import type { FetchResult, ItemsChange, ItemsView, ResetReport, SyncCallOptions, SyncNowReport, SyncStatsView, SyncStatusView } from './sync-types.js'

/** The shape shared by every way of reaching a workspace: in-process or through a running peer. */

export interface WorkspaceInfo {
  home: string
  deviceId: string
  workspaceId: string
  name: string
  version: string
}

export interface CollectionInfo {
  name: string
  records: number
  /** Bytes the collection takes in the store (snapshot plus update log). */
  bytes: number
  kind?: string
  policy?: ConflictPolicy
  /** Conflicts waiting for `kitsync resolve` (ask policy). */
  openConflicts?: number
  /** Set when the collection cannot be loaded (e.g. DATA_CORRUPTION); records and bytes are 0. */
  error?: { code: string; message: string }
}

export interface ChangeEvent {
  collection: string
  key: string
  op: 'set' | 'del'
  /** The whole record after the change; absent for deletes. */
  value?: JsonValue
  /** `local` for writes made on this device, `remote` for merged updates from peers. */
  source: 'local' | 'remote'
  /** Milliseconds since the epoch, on the device that observed the change. */
  at: number
}

export interface SyncPeerEvent {
  /** Device id (PeerId) of the peer. */
  peerId: string
}

export interface SyncUpdateEvent extends SyncPeerEvent {
  collection: string
  bytes: number
}

export interface SyncOfflineEvent extends SyncPeerEvent {
  /** Why the session ended, when it was not a plain disconnect. */
  reason?: { code: string; message: string }
}

export type ConflictPolicy = 'merge' | 'latest_wins' | 'keep_both' | 'ask'

/** One side of a conflict: what one device wrote, stamped by its hybrid logical clock. */
export interface ConflictVersion {
  /** Device id of the writer. */
  device: string
  /** Hybrid logical clock stamp of the write (sorts like wall-clock time). */
  hlc: string
  /** The record (or the field, for a field conflict) as that device wrote it; absent for a delete. */
  value?: JsonValue
}

/** Concurrent writes to the same record (or field) met; what the collection's policy did with them. */
export interface ConflictEvent {
  /** Stable id, for `kitsync resolve`. */
  id: string
  collection: string
  key: string
  /** Set when the conflict is on one field of a record. */
  field?: string
  policy: ConflictPolicy
  /** `merged`/`latest`: settled automatically; `kept-both`: the other version is kept as a record; `open`: waits for resolve. */
  resolution: 'merged' | 'latest' | 'kept-both' | 'open'
  versions: ConflictVersion[]
  /** Milliseconds since the epoch, when this device detected it. */
  at: number
}

/**
 * Progress of an exchange with one peer (the catch-up when a session opens: a join, a device
 * back online; `sync now`): `done` of the `total` collections asked for in it were answered,
 * `bytes` received from the peer since it began. The total is what the session knows up front:
 * the collections both sides sync (a STEP2 answer carries no announced size before it arrives).
 * At most one event per 200 ms per exchange; the first and the last (done === total) always.
 */
export interface SyncProgressEvent extends SyncPeerEvent {
  /** The device (its id, the same as peerId). */
  device: string
  /** The collection whose answer moved the count (absent in the first event of an exchange). */
  collection?: string
  done: number
  total: number
  bytes: number
  /** Same as done, total and bytes (the names of kitsync 0.1). */
  collectionsDone: number
  collectionsTotal: number
  bytesIn: number
}

export interface AuditEntryView {
  at: number
  device: string
  type: string
  peer?: string
  reason: string
}

export type { SelfRevocation }

export interface DeviceEvent {
  peerId: string
  name: string
  /** The device that added (or revoked) it. */
  by: string
}

/** A device of the workspace as its membership records it. */
export interface DeviceRecord {
  peerId: string
  name: string
  addedBy: string
  addedAt: number
  state: 'trusted' | 'revoked'
  /** `untrusted`: a storage/relay peer (the VPS): transport only, never the workspace keys. */
  role: 'trusted' | 'untrusted'
  revokedBy?: string
  revokedAt?: number
  /** Last time the running peer saw it (absent without a running peer). */
  lastSeen?: number
  self: boolean
}

export interface WorkspaceEvents {
  change: ChangeEvent
  /** A peer connected and the sync session started. */
  'sync:connected': SyncPeerEvent
  /** Updates from a peer were merged. */
  'sync:update': SyncUpdateEvent
  /** A peer's sync session ended. */
  'sync:offline': SyncOfflineEvent
  /** Concurrent writes met; see ConflictEvent.resolution. */
  'sync:conflict': ConflictEvent
  /** A catch-up with a peer advanced (emitted while a large catch-up runs). */
  'sync:progress': SyncProgressEvent
  /** Sync was paused (see Workspace.pause). */
  'sync:paused': SyncPause
  /** Sync was resumed (by resume() or the end of the pause's time). */
  'sync:resumed': SyncResumed
  /** A device was added to the workspace (here or on another device). */
  'device:joined': DeviceEvent
  /** A device was revoked (here or on another device). */
  'device:revoked': DeviceEvent
  /** This device was revoked: the members refuse it; it stops syncing (see SelfRevocation). */
  'device:revoked-self': SelfRevocation
  /** A device proved a --confirm token and waits for approval (compare the codes). */
  'pairing:pending': { tokenId: string; peerId: string; name: string; code: string }
  /** A file of a shared folder changed on this device's disk (kitsync folder). */
  'folder:change': FolderChangeEvent
  /** Two versions of a shared folder's file could not be merged: one was kept beside the other. */
  'folder:conflict': FolderConflictEvent
}

export const WORKSPACE_EVENTS = [
  'change',
  'sync:connected',
  'sync:update',
  'sync:offline',
  'sync:conflict',
  'sync:progress',
  'sync:paused',
  'sync:resumed',
  'device:joined',
  'device:revoked',
  'device:revoked-self',
  'pairing:pending',
  'folder:change',
  'folder:conflict',
] as const satisfies readonly (keyof WorkspaceEvents)[]

/** How a collection behaves: its kind, conflict policy and limits (synced to every device). */
export interface CollectionSettingsView {
  name: string
  kind: string
  description: string
  policy: ConflictPolicy
  limits: { maxRecords?: number; maxSetSize?: number }
  /** Fields that are not plain values: `set`, `growset` (append-only set) or `log` (append-only list). */
  fieldTypes: Record<string, string>
  /** Records cannot be changed or deleted once written. */
  appendOnly: boolean
  /** Not held by a device until it asks for the collection. */
  onDemand: boolean
  /** history: secret rules added to the built-in ones. */
  secretRules: { name: string; pattern: string }[]
  /** How long old versions of records are kept on each device. */
  history: HistoryRetention
}

export interface CollectionChange {
  /** Only before the collection holds records. */
  kind?: string
  policy?: ConflictPolicy
  /** A number sets a limit; null goes back to the kind's default. */
  limits?: { maxRecords?: number | null; maxSetSize?: number | null }
  /** Replaces the collection's extra secret rules. */
  secretRules?: { name: string; pattern: string }[]
  /** History retention: `off`, a version count and/or days; null goes back to the default. */
  history?: HistorySetting | null
}

/** A conflict recorded by the `ask` policy and not resolved yet. */
export interface ConflictView {
  id: string
  collection: string
  key: string
  field?: string
  versions: ConflictVersion[]
  at: number
  /** Device that recorded it. */
  detectedBy: string
}

export type ResolveChoice =
  /** Take the version written by this device (its id or the tag the conflict shows) or with this stamp. */
  | { take: string }
  /** Write this value instead of any version. */
  | { value: JsonValue }

export interface ResolveResult {
  collection: string
  key: string
  field?: string
  /** What the record (or field) holds now; absent if the chosen version was a delete. */
  value?: JsonValue
}

export interface AppendOptions {
  /** Record to append to (with `field`); by default a new record, keyed by clock (history: by command and session). */
  key?: string
  /** Append to this append-only list field of the record (issues: notes). */
  field?: string
}

export interface SetOptions {
  /** Set only this top-level field of the record; other fields are kept. */
  field?: string
}

export interface PeerState {
  running: boolean
  pid?: number
  startedAt?: number
  socket: string
}

/** A device of the workspace as the running peer sees it. */
export interface DeviceView {
  peerId: string
  name: string
  addedBy: string
  addedAt: number
  /** `revoked`: in `_revoked` (this device too, once it knows it was revoked). */
  state: 'this device' | 'connected' | 'disconnected' | 'never seen' | 'revoked'
  /** Remote address of the connection in use. */
  address?: string
  lastSeen?: number
  lastSync?: number
  bytesIn?: number
  bytesOut?: number
  /** Bytes queued for this peer and not yet sent. */
  unsentBytes?: number
}

/** A connected device's clock against this one's (theirs minus ours), measured over a round trip of `rttMs`. */
export interface DeviceClock {
  device: string
  offsetMs: number
  rttMs: number
  at: number
}

export interface NetworkStatus {
  peerId: string
  listen: string[]
  discovery: { mdns: 'on' | 'off' | 'unavailable'; reason?: string }
  bootstrap: string[]
  connected: number
  refusedConnections: number
  /** Epoch of the current workspace key (0: none yet; +1 at each revocation). */
  keyEpoch: number
  devices: DeviceView[]
  /** Clocks of the connected devices (kitsync doctor), as last measured; absent from a peer that does not measure them. */
  clocks?: DeviceClock[]
  /** Members this peer is connected to that serve circuit relay; a reservation on one shows as a listen address `/p2p/RELAY/p2p-circuit`. */
  relays?: string[]
  /**
   * The encrypted store: on an untrusted peer (the VPS) its figures, on a trusted device its
   * sessions with stores (cursor: last entry applied; pending: changes not yet acknowledged).
   */
  blindStore?:
    | { role: 'store'; storeId: string; head: number; snapshotSeq: number; sinceCount: number; sinceBytes: number; sessions: number }
    | {
        role: 'device'
        stores: { peerId: string; live: boolean; cursor: number; pending: boolean }[]
        lastError?: { peerId: string; code: string; message: string }
      }
}

export interface WorkspaceStatus {
  info: WorkspaceInfo
  peer: PeerState
  collections: CollectionInfo[]
  /** Present when a peer runs: its addresses, discovery and devices. */
  network?: NetworkStatus
  /** Present when this device knows it was revoked. */
  revoked?: SelfRevocation
  /** Present while sync is paused (kitsync sync pause). */
  paused?: SyncPause
  /** Where sync stands overall and per device: state, pending count, last sync (see SyncStatusView). */
  sync?: SyncStatusView
}

/** Sync paused (kitsync sync pause): no exchange with any device until resumed, or until `until`. */
export interface SyncPause {
  since: number
  /** When it resumes by itself (`--for`); absent: until `sync resume`. */
  until?: number
}

export interface SyncResumed {
  at: number
  /** `command`: resume() was called; `timer`: the `--for` time passed. */
  by: 'command' | 'timer'
}

export interface WorkspaceExport {
  format: 'kitsync-export'
  formatVersion: 1
  workspace: { id: string; name: string }
  exportedAt: string
  collections: Record<string, Record<string, JsonValue>>
  /** Collections that could not be read, with the reason; they are not in `collections`. */
  unreadable: { collection: string; code: string; message: string }[]
}

export interface ChangesOptions {
  /** Only changes of this collection. */
  collection?: string
  signal?: AbortSignal
}

export interface Workspace {
  /** `local`: this process owns the store. `peer`: requests go to the running peer. */
  readonly mode: 'local' | 'peer'
  info(): Promise<WorkspaceInfo>
  /** One record, or undefined if the collection has no such key. Unknown collection: UNKNOWN_COLLECTION. */
  get(collection: string, key: string): Promise<JsonValue | undefined>
  /** All records of a collection by key. */
  getAll(collection: string): Promise<Record<string, JsonValue>>
  /** Write a record; resolves once the write is durable. Creates the collection on first write. */
  set(collection: string, key: string, value: JsonValue, options?: SetOptions): Promise<void>
  /** Delete a record; false if it did not exist. */
  delete(collection: string, key: string): Promise<boolean>
  list(): Promise<CollectionInfo[]>
  export(): Promise<WorkspaceExport>
  /** Write the app collections to a git repository (DIR), a JSON file per record, and commit what changed (system git). */
  exportGit(dir: string, options?: GitExportOptions): Promise<GitExportReport>
  /** Load records (readImportSource: a JSON or git export) as new writes, checked by kind; any refused record fails it all, nothing written. */
  importRecords(source: ImportSource, options?: ImportOptions): Promise<ImportReport>
  status(): Promise<WorkspaceStatus>
  /** Subscribe to an event; returns the function that unsubscribes. */
  on<K extends keyof WorkspaceEvents>(event: K, listener: (payload: WorkspaceEvents[K]) => void): () => void
  /** Every device of the workspace, trusted or revoked. */
  devices(): Promise<DeviceRecord[]>
  /** Revoke a device (by id, a unique part of it, or its name). Permanent. */
  revoke(device: string, reason?: string): Promise<DeviceRecord>
  /** The synced audit log, oldest first. */
  log(): Promise<AuditEntryView[]>
  /** Add elements to a set field of a record (watchlist symbols, tags); creates the record if needed. */
  add(collection: string, key: string, field: string, elements: string[]): Promise<void>
  /** Remove elements from a set field. Append-only sets refuse with APPEND_ONLY. */
  remove(collection: string, key: string, field: string, elements: string[]): Promise<void>
  /** Append an entry: a new record (journal, history) or, with `field`, an entry of a record's list. */
  append(collection: string, value: JsonValue, options?: AppendOptions): Promise<{ key: string }>
  /** Kind, policy and limits of a collection (it need not exist yet). */
  collection(name: string): Promise<CollectionSettingsView>
  /** Change a collection's settings (synced to every device). */
  configure(name: string, change: CollectionChange): Promise<CollectionSettingsView>
  /** Conflicts waiting for a decision (`ask` policy), of one collection or all. */
  conflicts(collection?: string): Promise<ConflictView[]>
  /** Settle an open conflict by taking one version or writing a new value. */
  resolve(collection: string, id: string, choice: ResolveChoice): Promise<ResolveResult>
  /**
   * A record's versions newest first (with a key), or a collection's changes newest first
   * (without). History is kept by each device from the time it holds the collection; it does not sync.
   */
  history(collection: string, key?: string, options?: HistoryOptions): Promise<HistoryEntry[]>
  /** Write an old version of a record again (by its stamp, or the one current at a time) as a new write that syncs. */
  restore(collection: string, key: string, target: RestoreTarget): Promise<RestoreResult>
  /** Changes as an async iterable, until `signal` aborts or the workspace closes. */
  changes(options?: ChangesOptions): AsyncIterable<ChangeEvent>
  /** What this device syncs (selective sync), and why for each collection it has. */
  items(): Promise<ItemsView>
  /** Change the items or local-only patterns; kept in workspace.json, applied at once by a running peer. */
  setItems(change: ItemsChange): Promise<ItemsView>
  /** Add a collection (e.g. an on-demand `drawings.*` one) to the items and pull it from the connected peers. */
  fetch(collection: string, options?: SyncCallOptions): Promise<FetchResult>
  /** Exchange with every reachable device now (needs the running peer: PEER_NOT_RUNNING otherwise). */
  syncNow(options?: SyncCallOptions): Promise<SyncNowReport>
  /**
   * Stop exchanging with every device (local reads and writes go on) until resume(), or for
   * `forMs`. Kept in the local store: a restarted peer stays paused. Pausing again replaces the time.
   */
  pause(options?: { forMs?: number }): Promise<SyncPause>
  /** Exchange again at once; `resumed` is false when sync was not paused. */
  resume(): Promise<{ resumed: boolean }>
  /** Sync counters per peer and per collection (live from the peer, else as last saved). */
  stats(): Promise<SyncStatsView>
  /** Clear sync state (counters, last seen, backoff); never data, keys or identity. */
  resetSync(): Promise<ResetReport>
  /** Compare each app collection's (or one's) records with its index rows; `repair` rebuilds differing rows from the records. */
  check(collection?: string, options?: { repair?: boolean }): Promise<IndexCheckReport[]>
  close(): Promise<void>
}

/** What `check` found in one collection: its stored index rows against its records. */
export interface IndexCheckReport {
  collection: string
  records: number
  /** Keys whose index row is not the record: another value or stamp, no row, a row without a record, or a damaged row. */
  differing: string[]
  /** More differing keys than `differing` lists. */
  more?: number
  /** The checkpoint (what the rows reflect, and the record count) is wrong or missing. */
  checkpointWrong?: true
  /** The rows were rebuilt from the records (`repair`), and checked again. */
  repaired?: true
  /** The collection could not be read. */
  error?: { code: string; message: string }
}
