/**
 * kitsync library API.
 *
 *   import { openWorkspace } from 'kitsync'
 *   const ws = await openWorkspace({ home: '/path/to/home' })
 *   await ws.set('watchlists', 'tech', { symbols: ['AAPL'] })
 */
import './polyfill.js'

export { openWorkspace, type OpenWorkspaceOptions } from './api/open-workspace.js'
export { startPeer, type PeerOptions } from './api/start-peer.js'
export type { DetachedPeer } from './api/detached-peer.js'
export { resolveWith, type ConflictResolver, type ResolverOptions } from './api/conflict-resolver.js'
export { KINDS, KIND_NAMES, CONFLICT_POLICIES, type KindName } from './core/kinds.js'
export { BUILTIN_SECRET_RULES, type SecretRule } from './core/secrets.js'
export { KitsyncError, ERROR_CODES, isKitsyncError, type ErrorCode } from './core/errors.js'
export type { JsonValue, JsonObject, JsonPrimitive } from './core/json.js'
export type { HistoryEntry, HistoryOptions, HistoryRetention, HistorySetting, RestoreResult, RestoreTarget } from './core/history-types.js'
export type { DeviceSyncStatus, SyncState, SyncStatusView } from './core/sync-types.js'
export type {
  AppendOptions,
  ChangeEvent,
  ChangesOptions,
  CollectionChange,
  CollectionInfo,
  CollectionSettingsView,
  ConflictEvent,
  ConflictPolicy,
  ConflictVersion,
  ConflictView,
  ResolveChoice,
  ResolveResult,
  SelfRevocation,
  SyncProgressEvent,
  SyncPause,
  SyncResumed,
  DeviceView,
  NetworkStatus,
  SyncOfflineEvent,
  SyncPeerEvent,
  SyncUpdateEvent,
  PeerState,
  SetOptions,
  Workspace,
  WorkspaceEvents,
  WorkspaceExport,
  WorkspaceInfo,
  WorkspaceStatus,
} from './core/workspace-types.js'
export { readImportSource } from './api/transfer.js'
export { folders, type Folders } from './api/folders.js'
export type {
  FolderAddOptions,
  FolderChangeEvent,
  FolderConflictEvent,
  FolderFileStatus,
  FolderListItem,
  FolderStatusView,
  FileSyncState,
} from './core/folder-types.js'
export type { FileHistory, FileRestoreResult, FileVersion, FileVersionOp } from './core/folder-versions.js'
export type {
  GitExportChange,
  GitExportOptions,
  GitExportReport,
  ImportCollection,
  ImportCollectionReport,
  ImportOptions,
  ImportProblem,
  ImportReport,
  ImportSource,
} from './core/transfer-types.js'
export { KITSYNC_VERSION } from './core/version.js'
export { DEFAULT_MAX_RECORD_BYTES } from './core/record-collection.js'
