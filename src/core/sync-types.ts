import type { ItemsChange, SyncReason } from './selection.js'

/** What `kitsync items`, `stats`, `sync now`, `fetch` and `reset` return (library and control API alike). */

export type { ItemsChange }

export interface ItemsView {
  /** Items this device syncs; null: every collection (on-demand ones only when held). */
  items: string[] | null
  localOnly: string[]
  /** Name prefixes of on-demand collections. */
  onDemand: string[]
  /** The collections this device has, and whether each syncs. */
  collections: { name: string; syncs: boolean; reason: SyncReason }[]
}

export interface SyncCounters {
  /** Sync sessions opened (connections that said hello). */
  sessions: number
  /** Completed exchanges: per peer, catch-ups and `sync now` rounds; per collection, answers received. */
  syncs: number
  framesIn: number
  framesOut: number
  bytesIn: number
  bytesOut: number
  /** Updates received that changed something here. */
  updatesApplied: number
  /** Updates of this device's state sent (a live update, or the answer to a state vector). */
  updatesSent: number
  /** Updates received for a collection this device does not sync (dropped). */
  updatesDropped: number
  /** Conflicts the workspace reported (sync:conflict events). */
  conflicts: number
  /** Last time data moved either way. */
  lastSyncAt?: number
}

export interface PeerCounters extends SyncCounters {
  /** Last time a frame came from this peer. */
  lastSeenAt?: number
  /** When the last whole exchange with this peer completed, and how long it took. */
  lastExchangeAt?: number
  lastExchangeMs?: number
}

export interface SyncStatsSnapshot {
  format: 'kitsync-sync-stats'
  formatVersion: 1
  /** When counting started (first start, or the last reset). */
  since: number
  totals: SyncCounters
  peers: Record<string, PeerCounters>
  collections: Record<string, SyncCounters>
}

export interface SyncStatsView extends SyncStatsSnapshot {
  /** True when read from the running peer; false: the totals it saved when it last ran. */
  live: boolean
  /** Device names by id, from the membership. */
  names: Record<string, string>
}

/** Options of `syncNow` and `fetch`. */
export interface SyncCallOptions {
  /** How long to wait for the devices' answers (default 15000). */
  timeoutMs?: number
  /**
   * Stop waiting: the call rejects with ABORTED at once (nothing is done if it already aborted).
   * What was merged before stays merged; a fetch keeps the collection in the items.
   */
  signal?: AbortSignal
}

export interface SyncNowPeer {
  peerId: string
  name: string
  /** A sync session with it was open (or opened) and answered. */
  reached: boolean
  error?: { code: string; message: string }
  /** Collections exchanged, and whether every one was answered before the deadline. */
  collections: number
  complete: boolean
  bytesIn: number
  bytesOut: number
  updatesApplied: number
  ms: number
}

export interface SyncNowReport {
  startedAt: number
  ms: number
  peers: SyncNowPeer[]
}

export interface FetchResult {
  collection: string
  /** It was not among the items before (and now is). */
  added: boolean
  /** The collection is here now, with this many records. */
  present: boolean
  records: number
  /** The peers asked, and whether each answered in time. */
  peers: { peerId: string; complete: boolean }[]
  /** Set when nothing could be asked (no running peer, no connected peer). */
  note?: string
}

export interface ResetReport {
  /** What was cleared. */
  cleared: string[]
  /** Sync sessions closed and reopened with a full exchange (running peer only). */
  sessionsRestarted: number
}

/** Where sync with a device (or, overall, with all of them) stands (kitsync status). */
export type SyncState = 'idle' | 'syncing' | 'paused' | 'offline' | 'error'

export interface DeviceSyncStatus {
  deviceId: string
  name: string
  state: SyncState
  /** While syncing: the exchange's collections answered out of all asked, bytes received meanwhile. */
  progress?: { collectionsDone: number; collectionsTotal: number; bytesIn: number }
  /** The error that ended the last session with it (state `error`), until a session says hello again. */
  error?: { code: string; message: string; at: number }
  /** This device's writes (Yjs operations) the device is not known to hold; offline: what goes when it is back. */
  pending: number
  /** The same per collection (only collections with some pending). */
  pendingByCollection: Record<string, number>
  /** Last frame from it; last time data moved either way; the last whole exchange and how long it took. */
  lastSeenAt?: number
  lastSyncAt?: number
  lastExchangeAt?: number
  lastExchangeMs?: number
}

/** `status().sync`: the state overall and per device. `live`: from the running peer, else from what it saved. */
export interface SyncStatusView {
  state: SyncState
  live: boolean
  paused?: { since: number; until?: number }
  /** Sum of the devices' pending counts. */
  pending: number
  devices: DeviceSyncStatus[]
}
