import * as Y from 'yjs'

/**
 * What each device is known to hold of this device's own writes, for the pending count of
 * `kitsync status` (pure; the daemon persists it in the local store, one value per device).
 *
 * Own writes are counted in Yjs clock ticks of the clients that wrote here (a document gets a
 * new client id each time it is loaded, so a collection may have several): `own` holds, per
 * collection, how far each of them got. A device is known to hold what its last state vector
 * for the collection says (sent at the start of every exchange, and by `sync now`) plus every
 * update sent to it on a session since. Pending for a device: the ticks of own writes beyond
 * that, over the collections shared with it. A device that is offline keeps its last known
 * state, so its pending count grows with every write here until it is back and has them.
 *
 * A write relayed by a third device is not seen here, so until the next exchange with this
 * device the count may be too high, never too low: "0 pending" means the device has them.
 *
 * Only this device writes with its own clients, so a collection's stored state vector says how
 * far each of them got: after a crash the clocks are recounted from it (`recount`), and only
 * the set of own clients must be saved promptly (`onNewClient`), not every write.
 */

/** Clock per Yjs client id. */
export type Clocks = Map<number, number>

/** Persisted form: per collection, [client, clock] pairs. */
export type ClocksByCollection = Record<string, [number, number][]>

export class PendingLedger {
  private readonly own = new Map<string, Clocks>()
  private readonly known = new Map<string, Map<string, Clocks>>()
  /** Peers whose known state changed since `takeDirty`; `own` is listed as '' . */
  private readonly dirtyKeys = new Set<string>()
  /** Called when a write comes from a client not counted before (the first write of a document's load). */
  onNewClient: (() => void) | undefined

  /** A local write in `collection` by `client` brought its clock to `clock`. */
  localWrite(collection: string, client: number, clock: number): void {
    let clocks = this.own.get(collection)
    if (clocks === undefined) this.own.set(collection, (clocks = new Map()))
    const known = clocks.get(client)
    if ((known ?? 0) >= clock) return
    clocks.set(client, clock)
    this.dirtyKeys.add('')
    if (known === undefined) this.onNewClient?.()
  }

  /** Collections with counted own writes. */
  ownCollections(): string[] {
    return [...this.own.keys()]
  }

  /**
   * The collection's stored updates (storedClocks) hold the own clients' writes up to these
   * clocks: counts that lag (a crash before the last save) catch up. Returns whether any did.
   */
  recount(collection: string, stored: Clocks): boolean {
    const own = this.own.get(collection)
    if (own === undefined) return false
    let changed = false
    for (const [client, clock] of stored) {
      if (!own.has(client) || (own.get(client) ?? 0) >= clock) continue
      own.set(client, clock)
      changed = true
    }
    if (changed) this.dirtyKeys.add('')
    return changed
  }

  /** Whether any write of this device in `collection` is counted (else sends need no decoding). */
  hasOwn(collection: string): boolean {
    return this.own.has(collection)
  }

  /**
   * The peer sent its state vector for the collection: it holds at least that. Merged, not
   * replaced: a report can arrive late (read on a session that then lost a simultaneous open)
   * and must not undo what a later update delivered; a device does not lose what it merged.
   */
  reported(peerId: string, collection: string, vector: Clocks): void {
    const own = this.own.get(collection)
    if (own === undefined) return
    const peer = this.peer(peerId)
    let held = peer.get(collection)
    if (held === undefined) peer.set(collection, (held = new Map()))
    for (const client of own.keys()) {
      const clock = vector.get(client)
      if (clock === undefined || (held.get(client) ?? 0) >= clock) continue
      held.set(client, clock)
      this.dirtyKeys.add(peerId)
    }
  }

  /**
   * An update went to the peer on a session: it holds what the update holds, for each client
   * whose part of the update follows on from what the peer is known to hold (a diff starts
   * where the peer's state vector ended; a part with a gap before it waits in the peer, so it
   * is not counted).
   */
  delivered(peerId: string, collection: string, update: Uint8Array): void {
    const own = this.own.get(collection)
    if (own === undefined) return
    let meta: { from: Clocks; to: Clocks }
    try {
      meta = Y.parseUpdateMeta(update)
    } catch {
      return // not an update this ledger can read: counted as not delivered
    }
    const peer = this.peer(peerId)
    let held = peer.get(collection)
    if (held === undefined) peer.set(collection, (held = new Map()))
    for (const [client, to] of meta.to) {
      const has = held.get(client) ?? 0
      if (!own.has(client) || has >= to || (meta.from.get(client) ?? 0) > has) continue
      held.set(client, to)
      this.dirtyKeys.add(peerId)
    }
  }

  /** Own write ticks the peer is not known to hold, over the collections `shares` accepts. */
  pending(peerId: string, shares: (collection: string) => boolean = () => true): number {
    return Object.values(this.pendingByCollection(peerId, shares)).reduce((n, c) => n + c, 0)
  }

  /** The same per collection (only collections with some pending). */
  pendingByCollection(peerId: string, shares: (collection: string) => boolean = () => true): Record<string, number> {
    const peer = this.known.get(peerId)
    const out: Record<string, number> = {}
    for (const [collection, clocks] of this.own) {
      if (!shares(collection)) continue
      const held = peer?.get(collection)
      let n = 0
      for (const [client, clock] of clocks) n += Math.max(0, clock - (held?.get(client) ?? 0))
      if (n > 0) out[collection] = n
    }
    return out
  }

  /** Forget what a device holds (kitsync reset, or the device was revoked). */
  forget(peerId: string): void {
    if (this.known.delete(peerId)) this.dirtyKeys.add(peerId)
  }

  /** Keys changed since the last call ('' for the own writes, else peer ids), then cleared. */
  takeDirty(): string[] {
    const keys = [...this.dirtyKeys]
    this.dirtyKeys.clear()
    return keys
  }

  ownSnapshot(): ClocksByCollection {
    return toRecord(this.own)
  }

  peerSnapshot(peerId: string): ClocksByCollection | undefined {
    const peer = this.known.get(peerId)
    return peer === undefined ? undefined : toRecord(peer)
  }

  /** Restore the persisted state (values that do not parse are skipped). */
  restore(own: unknown, peers: Record<string, unknown>): void {
    const hook = this.onNewClient
    this.onNewClient = undefined
    for (const [collection, clocks] of fromRecord(own)) for (const [client, clock] of clocks) this.localWrite(collection, client, clock)
    this.onNewClient = hook
    for (const [peerId, value] of Object.entries(peers)) {
      const map = fromRecord(value)
      if (map.size > 0) this.known.set(peerId, map)
    }
    this.dirtyKeys.clear()
  }

  private peer(peerId: string): Map<string, Clocks> {
    let peer = this.known.get(peerId)
    if (peer === undefined) this.known.set(peerId, (peer = new Map()))
    return peer
  }
}

/** How far each client got in these stored updates (the end clock of its latest part), without merging them. */
export function storedClocks(updates: readonly Uint8Array[]): Clocks {
  const clocks: Clocks = new Map()
  for (const update of updates) {
    for (const [client, to] of Y.parseUpdateMeta(update).to) if (to > (clocks.get(client) ?? 0)) clocks.set(client, to)
  }
  return clocks
}

function toRecord(map: Map<string, Clocks>): ClocksByCollection {
  const out: ClocksByCollection = {}
  for (const [collection, clocks] of map) out[collection] = [...clocks]
  return out
}

function fromRecord(value: unknown): Map<string, Clocks> {
  const out = new Map<string, Clocks>()
  if (typeof value !== 'object' || value === null) return out
  for (const [collection, pairs] of Object.entries(value as Record<string, unknown>)) {
    if (!Array.isArray(pairs)) continue
    const clocks: Clocks = new Map()
    for (const pair of pairs) {
      if (Array.isArray(pair) && Number.isInteger(pair[0]) && Number.isInteger(pair[1])) clocks.set(pair[0] as number, pair[1] as number)
    }
    out.set(collection, clocks)
  }
  return out
}
