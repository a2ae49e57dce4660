/**
 * Sync counters of one device, per peer and per collection (pure; the daemon persists a
 * snapshot in the local store so `kitsync stats` survives a restart).
 */

import type { PeerCounters, SyncCounters, SyncStatsSnapshot } from '../core/sync-types.js'

export type { PeerCounters, SyncCounters, SyncStatsSnapshot }

function zero(): SyncCounters {
  return { sessions: 0, syncs: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, updatesApplied: 0, updatesSent: 0, updatesDropped: 0, conflicts: 0 }
}

const NUMERIC: (keyof SyncCounters)[] = [
  'sessions',
  'syncs',
  'framesIn',
  'framesOut',
  'bytesIn',
  'bytesOut',
  'updatesApplied',
  'updatesSent',
  'updatesDropped',
  'conflicts',
]

export class SyncStats {
  private since: number
  private readonly peers = new Map<string, PeerCounters>()
  private readonly collections = new Map<string, SyncCounters>()
  /** Set on every change; the owner clears it after persisting. */
  dirty = false

  constructor(private readonly now: () => number) {
    this.since = now()
  }

  peer(id: string): PeerCounters {
    let c = this.peers.get(id)
    if (c === undefined) this.peers.set(id, (c = zero()))
    this.dirty = true
    return c
  }

  collection(name: string): SyncCounters {
    let c = this.collections.get(name)
    if (c === undefined) this.collections.set(name, (c = zero()))
    this.dirty = true
    return c
  }

  frameIn(peerId: string, bytes: number): void {
    const p = this.peer(peerId)
    p.framesIn++
    p.bytesIn += bytes
    p.lastSeenAt = this.now()
  }

  frameOut(peerId: string, bytes: number, collection?: string): void {
    const p = this.peer(peerId)
    p.framesOut++
    p.bytesOut += bytes
    if (collection !== undefined) {
      const c = this.collection(collection)
      c.framesOut++
      c.bytesOut += bytes
    }
  }

  /** A received frame that belongs to a collection. */
  collectionIn(collection: string, bytes: number): void {
    const c = this.collection(collection)
    c.framesIn++
    c.bytesIn += bytes
  }

  applied(peerId: string, collection: string): void {
    const at = this.now()
    for (const c of [this.peer(peerId), this.collection(collection)]) {
      c.updatesApplied++
      c.lastSyncAt = at
    }
  }

  /** Our updates went out to a peer. */
  sent(peerId: string, collection: string): void {
    const at = this.now()
    for (const c of [this.peer(peerId), this.collection(collection)]) {
      c.updatesSent++
      c.lastSyncAt = at
    }
  }

  dropped(peerId: string, collection: string): void {
    this.peer(peerId).updatesDropped++
    this.collection(collection).updatesDropped++
  }

  session(peerId: string): void {
    this.peer(peerId).sessions++
  }

  /** A whole exchange with a peer completed. */
  synced(peerId: string, ms?: number): void {
    const p = this.peer(peerId)
    p.syncs++
    p.lastExchangeAt = this.now()
    if (ms !== undefined) p.lastExchangeMs = ms
  }

  /** One collection's exchange completed (its answer arrived). */
  collectionSynced(collection: string): void {
    this.collection(collection).syncs++
  }

  conflict(collection: string, peers: readonly string[]): void {
    this.collection(collection).conflicts++
    for (const id of peers) this.peer(id).conflicts++
  }

  /** Current counters of one peer (zeros if none), for before/after comparisons. */
  peerCounters(peerId: string): PeerCounters {
    return { ...(this.peers.get(peerId) ?? zero()) }
  }

  snapshot(): SyncStatsSnapshot {
    const totals = zero()
    for (const p of this.peers.values()) {
      for (const k of NUMERIC) if (k !== 'conflicts') (totals[k] as number) += p[k] as number
      if (p.lastSyncAt !== undefined && (totals.lastSyncAt === undefined || p.lastSyncAt > totals.lastSyncAt)) totals.lastSyncAt = p.lastSyncAt
    }
    for (const c of this.collections.values()) totals.conflicts += c.conflicts
    return {
      format: 'kitsync-sync-stats',
      formatVersion: 1,
      since: this.since,
      totals,
      peers: Object.fromEntries([...this.peers].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, { ...v }])),
      collections: Object.fromEntries([...this.collections].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, { ...v }])),
    }
  }

  /** Continue from a persisted snapshot (anything malformed is ignored). */
  load(snapshot: unknown): void {
    const s = readSnapshot(snapshot)
    if (s === undefined) return
    this.since = s.since
    for (const [id, c] of Object.entries(s.peers)) this.peers.set(id, c)
    for (const [name, c] of Object.entries(s.collections)) this.collections.set(name, c)
  }

  reset(): void {
    this.peers.clear()
    this.collections.clear()
    this.since = this.now()
    this.dirty = true
  }
}

/** A persisted snapshot, checked field by field; undefined if it is not one. */
export function readSnapshot(value: unknown): SyncStatsSnapshot | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Partial<SyncStatsSnapshot>
  if (v.format !== 'kitsync-sync-stats' || typeof v.since !== 'number') return undefined
  const counters = (x: unknown): SyncCounters | undefined => {
    if (typeof x !== 'object' || x === null) return undefined
    const c = zero() as SyncCounters & { lastSeenAt?: number; lastExchangeAt?: number; lastExchangeMs?: number }
    for (const k of NUMERIC) {
      const n = (x as Record<string, unknown>)[k]
      if (typeof n === 'number' && Number.isFinite(n) && n >= 0) (c[k] as number) = n
    }
    for (const k of ['lastSyncAt', 'lastSeenAt', 'lastExchangeAt', 'lastExchangeMs'] as const) {
      const n = (x as Record<string, unknown>)[k]
      if (typeof n === 'number') c[k] = n
    }
    return c
  }
  const table = (x: unknown): Record<string, SyncCounters> => {
    const out: Record<string, SyncCounters> = {}
    if (typeof x !== 'object' || x === null) return out
    for (const [k, c] of Object.entries(x)) {
      const parsed = counters(c)
      if (parsed !== undefined) out[k] = parsed
    }
    return out
  }
  const peers = table(v.peers)
  const collections = table(v.collections)
  return { format: 'kitsync-sync-stats', formatVersion: 1, since: v.since, totals: counters(v.totals) ?? zero(), peers, collections }
}
