/**
 * Shared folders as the API shows them (docs/design/folders.md): `kitsync folder add/list/status/remove`,
 * the control methods of the same names and the events `folder:change` and `folder:conflict`.
 */

/** A file of a shared folder changed on this device's disk: by the user (local) or written from a peer's change (remote). */
export interface FolderChangeEvent {
  folder: string
  path: string
  op: 'added' | 'modified' | 'removed' | 'renamed' | 'dir-added' | 'dir-removed'
  /** For a rename: the old path. */
  from?: string
  source: 'local' | 'remote'
  at: number
}

/** Two versions of a file could not be merged: one stays at `path`, the other was saved as `backup`. */
export interface FolderConflictEvent {
  folder: string
  path: string
  backup: string
  /** `structured`: a JSON/YAML merge would break the file; `binary`: newest wins; `placement`: `folder add` found other content at the path. */
  reason: 'structured' | 'binary' | 'placement'
  /** Whose version stayed at `path`. */
  winner: 'local' | 'remote'
  at: number
}

export interface FolderAddOptions {
  /** Where the folder is placed on this device (absolute, or relative to the caller's directory). */
  path: string
  name: string
  /** Given on the first `folder add` (or again to change them): synced to every device. */
  include?: string[]
  exclude?: string[]
  maxFileSize?: number
}

/** A change of a shared folder's selection (`folder set`): each field given replaces the current one. */
export interface FolderSelectionChange {
  include?: string[]
  exclude?: string[]
  maxFileSize?: number
}

export interface FolderListItem {
  name: string
  /** Where it is placed on this device; absent: not here. */
  path?: string
  state: 'watching' | 'not here' | 'error'
  /** Live files in the manifest, and their bytes. */
  files: number
  bytes: number
  include: string[]
  exclude: string[]
  maxFileSize: number
  error?: { code: string; message: string }
}

export type FileSyncState = 'synced' | 'local changes' | 'incoming' | 'conflict' | 'local only' | 'excluded'

export interface FolderFileStatus {
  path: string
  kind: 'text' | 'binary' | 'dir'
  state: FileSyncState
  size: number
  /** For a conflict: the copy beside it. */
  conflictCopy?: string
}

export interface FolderStatusView {
  name: string
  path: string
  files: FolderFileStatus[]
  /** Files per state. */
  counts: Partial<Record<FileSyncState, number>>
}
