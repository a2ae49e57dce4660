import type { JsonValue } from './json.js'

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

export interface WorkspaceEvents {
  change: ChangeEvent
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

export interface WorkspaceStatus {
  info: WorkspaceInfo
  peer: PeerState
  collections: CollectionInfo[]
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
  status(): Promise<WorkspaceStatus>
  /** Subscribe to an event; returns the function that unsubscribes. */
  on<K extends keyof WorkspaceEvents>(event: K, listener: (payload: WorkspaceEvents[K]) => void): () => void
  /** Changes as an async iterable, until `signal` aborts or the workspace closes. */
  changes(options?: ChangesOptions): AsyncIterable<ChangeEvent>
  close(): Promise<void>
}
