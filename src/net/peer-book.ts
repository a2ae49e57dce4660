import type { SessionStats } from '../sync/sync-session.js'

export interface KnownPeer {
  peerId: string
  state: 'connected' | 'disconnected'
  address?: string
  lastSeen?: number
  lastSync?: number
  session?: SessionStats
}

/**
 * What the mesh knows of each member it has seen: connected or not, its address, when it was
 * last seen and last synced, its session's counters. Only members are entered (see Mesh), so a
 * stranger under a new PeerId each time does not grow it. The redial backoff is kept by key in
 * the mesh's BackoffScheduler (a key may also be an address or a relay path).
 */
export class PeerBook {
  private readonly peers = new Map<string, KnownPeer>()
  private readonly now: () => number

  constructor(now: () => number = Date.now) {
    this.now = now
  }

  has(peerId: string): boolean {
    return this.peers.has(peerId)
  }

  /** The peer was seen now in `state`; `address` is its connection's remote address, if it has one. */
  touch(peerId: string, state: KnownPeer['state'], address?: string): void {
    const entry = this.peers.get(peerId) ?? { peerId, state }
    entry.state = state
    entry.lastSeen = this.now()
    if (address !== undefined) entry.address = address
    this.peers.set(peerId, entry)
  }

  /** Copies of every entry; a peer with a session (`statsOf`) has its counters and last sync updated first. */
  list(statsOf: (peerId: string) => SessionStats | undefined): KnownPeer[] {
    for (const entry of this.peers.values()) {
      const stats = statsOf(entry.peerId)
      if (stats === undefined) continue
      entry.session = stats
      if (stats.lastSyncAt !== undefined) entry.lastSync = stats.lastSyncAt
    }
    return [...this.peers.values()].map((p) => ({ ...p }))
  }

  /** No member is synced with any more (this device was revoked), whatever connection is still open. */
  disconnectAll(): void {
    for (const entry of this.peers.values()) entry.state = 'disconnected'
  }

  /** Forget every peer: last seen, last sync, addresses (kitsync reset). */
  clear(): void {
    this.peers.clear()
  }
}
