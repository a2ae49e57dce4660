import type { UnitDigest } from '../protocol/unit-frames.js'

/**
 * What the sync engine needs from the workspace for units (core/unit-types.ts) and blobs: the
 * port the daemon's Units implementation (daemon/workspace-units.ts) plugs into, beside
 * SyncHost. Units travel on the sessions of the collections they belong to, so a unit goes
 * only where its collection goes (SyncHost.shares, accepts).
 */
export interface UnitSyncHost {
  /** Every stored unit of a collection with its digest (a hash of its id and state: UNIT_SUMS). */
  digests(collection: string): Promise<UnitDigest[]>
  /** A unit's state vector; the empty one when nothing of it is stored. */
  stateVector(collection: string, unit: string): Promise<Uint8Array>
  /** What the unit holds that `vector` lacks (a STEP2); undefined when nothing of it is stored. */
  diff(collection: string, unit: string, vector: Uint8Array): Promise<Uint8Array | undefined>
  /** A peer's update of a unit: applied to its open document and stored. Resolves with whether it held anything new. */
  applyRemote(collection: string, unit: string, update: Uint8Array, from: string): Promise<boolean>
  /** A blob from this device's store, undefined when it is not there. */
  localBlob(hash: string): Promise<Uint8Array | undefined>
  /** A blob a peer sent: stored if its bytes have the hash (else it throws DATA_CORRUPTION). */
  storeBlob(hash: string, bytes: Uint8Array): Promise<void>
  /** Whether blobs are exchanged with this peer at all (a trusted member). */
  exchangesBlobs(peerId: string): boolean
  /** The engine plugs in: committed units go to `forward`, blobs missing here are asked for with `fetchBlob`. */
  connect(engine: UnitEngineLink): void
}

/** What the engine offers the units host (see UnitSyncHost.connect). */
export interface UnitEngineLink {
  /** Send a unit's committed update to every connected peer that exchanges its collection. */
  forward(collection: string, unit: string, update: Uint8Array): void
  /** Ask connected peers for a blob; undefined once every one said it has none (or none is connected). */
  fetchBlob(hash: string, signal?: AbortSignal): Promise<Uint8Array | undefined>
}
