import type * as Y from 'yjs'
import type { KitsyncError } from '../core/errors.js'
import type { InterestRule } from '../core/selection.js'
import type { UnitSyncHost } from './unit-host.js'

/**
 * The two ports the sync engine plugs into: the workspace it syncs (SyncHost) and one
 * connection to a peer (PeerLink). Transports (libp2p, or an in-memory pair in tests) plug in
 * as PeerLinks.
 */

/** What the engine needs from the workspace. */
export interface SyncHost {
  readonly workspaceId: string
  /** Collections this device holds and syncs. */
  collectionNames(): string[]
  /** The document of a collection, loaded or created; the host persists its updates. */
  openDoc(name: string): Promise<Y.Doc>
  /** The document of a collection if it is loaded now (optional): lets a frame be handled without waiting a turn. */
  loadedDoc?(name: string): Y.Doc | undefined
  /** Resolves when what was applied to a collection so far is durable (optional). */
  flushDoc?(name: string): Promise<void>
  /** Whether the collection exists here; a state-vector request for one that does not is answered without creating it. */
  hasCollection?(name: string): boolean
  /**
   * Whether a collection may be exchanged with this peer at all (optional; default yes). A
   * collection not shared is neither named in the hello, nor asked for, nor sent, and updates
   * the peer sends for it are dropped: this is how local-only collections, selective sync and
   * untrusted peers are kept apart.
   */
  shares?(peerId: string, collection: string): boolean
  /**
   * Whether updates this peer sends for a shared collection are applied (optional; default
   * yes). Lets a device send the membership to an untrusted peer without ever taking a change
   * to it from that peer.
   */
  accepts?(peerId: string, collection: string): boolean
  /**
   * What this device wants from peers (optional): sent as an INTEREST frame before the hello,
   * and again after `SyncEngine.refreshInterest()`. Undefined: everything, and no INTEREST.
   */
  interest?(): InterestRule[] | undefined
  /**
   * Create a collection this device does not have from a peer's update (optional): the host
   * takes the update as the collection's first state without announcing it as a document
   * update, which spares re-encoding a whole workspace on a new device. Resolves with the new
   * document, or undefined if the collection appeared meanwhile (the engine then applies the
   * update as usual).
   */
  adopt?(name: string, update: Uint8Array): Promise<Y.Doc | undefined>
  /**
   * Updates that together hold everything this device has of a collection, as they are stored
   * (optional): the answer to a peer that has none of it, sent without re-encoding the
   * document. Undefined: the engine encodes the document instead.
   */
  storedState?(name: string): Promise<Uint8Array[] | undefined>
  /** The units of the collections and the blobs (optional): exchanged on the sessions as well (sync/unit-exchange.ts). */
  readonly units?: UnitSyncHost
}

/** One connection to a peer, seen from the engine. */
export interface PeerLink {
  readonly peerId: string
  /** Queue one frame, as one buffer or as the parts it is made of (sent back to back); never blocks. */
  send(frame: Uint8Array | readonly Uint8Array[]): void
  /** Close the link, telling the peer why when there is a reason. */
  close(error?: KitsyncError): void
  /** Bytes queued in the transport and not yet written. */
  readonly bufferedBytes: number
  /**
   * Resolves once at most `bytes` are queued (or the link closed): lets a sender of many frames
   * (the blind store's catch-up) go at the reader's pace. Absent: the sender does not wait.
   */
  whenBelow?(bytes: number): Promise<void>
}
