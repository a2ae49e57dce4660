import type { KitsyncError } from '../core/errors.js'
import type { SyncProgressEvent } from '../core/workspace-types.js'
import type { RevokedFrame } from '../protocol/sync-frames.js'

/** What the sync engine reports; its sessions emit them through it (SessionOwner.emit). */
export interface SyncEvents {
  /** The peer said hello: sessions exchange state from here on. */
  connected: { peerId: string }
  /** Updates from the peer were merged into a collection. */
  update: { peerId: string; collection: string; bytes: number }
  /** Every collection the peer announced has been brought up to date once. */
  'caught-up': { peerId: string }
  /** The session ended. */
  offline: { peerId: string; error?: KitsyncError }
  /** An exchange with a peer advanced: collections answered so far out of all asked, bytes received meanwhile. */
  progress: SyncProgressEvent
  /** The peer refused this device as revoked (a REVOKED frame, not verified here; the session is closed). */
  revoked: { peerId: string; notice: RevokedFrame }
  /** The catch-up of a collection's units found these differ from the peer's, and asked the peer for them (UNIT_WANT). */
  /** Entries of a collection's history from the peer were stored (history-exchange.ts). */
  'history-stored': { peerId: string; collection: string; count: number }
  'units-wanted': { peerId: string; collection: string; units: string[] }
}
