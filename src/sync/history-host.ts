import type { HistoryItem } from '../protocol/history-frames.js'

/**
 * What the sync engine needs from the workspace to sync history (sync/history-exchange.ts): the
 * port the daemon's entries (daemon/history-sync-store.ts) plug into, given to the engine as
 * SyncEngineOptions.history. History travels only on the sessions of the collections it belongs
 * to (SyncHost.shares, accepts), never for local-only or internal collections.
 */
export interface HistorySyncHost {
  /**
   * The oldest time (ms) of the history this device keeps of a collection, rounded down to the
   * hour so that both sides of a session name the same window; undefined: it keeps none (history
   * off, or an internal collection), and the collection's history is neither offered nor taken.
   */
  since(collection: string): number | undefined
  /** The items (`KEY\0STAMP`) of a collection whose stamp's time is at least `since`. */
  items(collection: string, since: number): Promise<string[]>
  /** The entries of these items (JSON); items no longer stored are left out. */
  entries(collection: string, ids: readonly string[]): Promise<HistoryItem[]>
  /**
   * Entries a peer sent: all checked first (a malformed one throws PROTOCOL_ERROR and none is
   * stored), then the ones within this device's retention that it lacks are stored with their
   * time-order rows in one batch; an existing entry is never overwritten. Resolves with how many
   * were stored.
   */
  store(collection: string, items: readonly HistoryItem[], from: string): Promise<number>
  /** Whether this device opens the reconciliation with a peer (one side does, so it runs once per session). */
  initiates(peerId: string): boolean
}
