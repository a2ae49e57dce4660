import { KitsyncError } from '../core/errors.js'
import type { FolderAddOptions, FolderListItem, FolderSelectionChange, FolderStatusView } from '../core/folder-types.js'
import type { FileHistory, FileRestoreResult } from '../core/folder-versions.js'
import type { HistoryRetention, HistorySetting, RestoreTarget } from '../core/history-types.js'
import type { Workspace } from '../core/workspace-types.js'
import { RemoteWorkspace } from './remote-workspace.js'

/** Shared folders of a workspace (they run in its peer): the library's side of `kitsync folder`. */
export interface Folders {
  /** Share a folder, or place an already shared one on this device (its files are merged with the workspace's). */
  add(options: FolderAddOptions): Promise<FolderListItem>
  /** The workspace's folders, placed here or not. */
  list(): Promise<FolderListItem[]>
  /** Per file: synced, local changes, incoming, conflict, local only, excluded (one folder, or each placed here). */
  status(name?: string): Promise<FolderStatusView[]>
  /** Stop syncing a folder on this device; its files stay. */
  remove(name: string): Promise<{ name: string; path: string }>
  /** A file's versions, newest first: time, device, op (added/modified/renamed/removed), size, hash, id. */
  history(name: string, path: string): Promise<FileHistory>
  /** Write an old version of a file again as a local change that syncs; FILE_CHANGED (nothing written) over an edit not captured yet. */
  restore(name: string, path: string, target: RestoreTarget): Promise<FileRestoreResult>
  /** A folder's history retention (synced): 'off', {count?, days?}, or null for the default (100 versions, 90 days). */
  setHistory(name: string, history: HistorySetting | null): Promise<{ name: string; history: HistoryRetention }>
  /** Change a folder's globs or size cap (each field given replaces the current one; synced: every device rescans under them). */
  setSelection(name: string, change: FolderSelectionChange): Promise<{ name: string; include: string[]; exclude: string[]; maxFileSize: number }>
}

/**
 * The folders of a workspace reached through its running peer (`openWorkspace({mode: 'peer'})`).
 * A workspace opened locally has no folder engine: PEER_NOT_RUNNING.
 */
export function folders(ws: Workspace): Folders {
  if (!(ws instanceof RemoteWorkspace)) throw new KitsyncError('PEER_NOT_RUNNING', 'shared folders run in the peer: open the workspace with {mode: "peer"}')
  const c = ws.client
  return {
    add: (options) => c.request('folderAdd', { ...options }) as Promise<FolderListItem>,
    list: () => c.request('folderList') as Promise<FolderListItem[]>,
    status: (name) => c.request('folderStatus', name === undefined ? {} : { name }) as Promise<FolderStatusView[]>,
    remove: (name) => c.request('folderRemove', { name }) as Promise<{ name: string; path: string }>,
    history: (name, path) => c.request('folderHistory', { name, path }) as Promise<FileHistory>,
    restore: (name, path, target) => c.request('folderRestore', { name, path, ...target }) as Promise<FileRestoreResult>,
    setHistory: (name, history) => c.request('folderSet', { name, history }) as Promise<{ name: string; history: HistoryRetention }>,
    setSelection: (name, change) =>
      c.request('folderSet', { name, ...change }) as Promise<{ name: string; include: string[]; exclude: string[]; maxFileSize: number }>,
  }
}
