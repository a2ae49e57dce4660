import { KitsyncError } from '../core/errors.js'
import { keepsHistory } from '../core/history-types.js'
import { decodeHistoryFrame, encodeHistoryFrame, HistoryFrameType, type HistoryFrame, type HistoryItem, type HistoryRange } from '../protocol/history-frames.js'
import { HistorySet, openingRanges, reconcile } from './history-reconcile.js'
import type { HistorySyncHost } from './history-host.js'
import type { PeerLink } from './sync-host.js'

export { isHistoryFrame } from '../protocol/history-frames.js'

/**
 * The history of one sync session (frames: protocol/history-frames.ts, the reconciliation:
 * history-reconcile.ts). Once the peer's answer to its STEP1 of a collection arrived, the side
 * that initiates (HistorySyncHost.initiates) sends the collection's opening fingerprint over the
 * items within its retention window;
 * each side answers ranges with ranges until they agree, pushes the entries the peer lacks
 * (HISTORY_ITEMS) and asks for the ones it lacks (HISTORY_WANT). A collection the session does not
 * exchange, an internal one, or one with history off on either side is neither offered nor taken.
 * Entries made while connected need none of this: each device derives them from the updates.
 */

/** The session the history rides on. */
export interface HistorySession {
  readonly peerId: string
  readonly isReady: boolean
  readonly isClosed: boolean
  shares(collection: string): boolean
}

/** What a session asks of its owner (the SyncEngine) for history: see SyncSession. */
export interface HistoryOwner {
  /** A history frame from the peer. */
  historyFrame(session: HistorySession, bytes: Uint8Array): Promise<void>
}

/** What the exchange needs from the engine. */
export interface HistoryRelay {
  readonly history: HistorySyncHost | undefined
  /** Whether this peer's data is taken at all (SyncHost.accepts). */
  accepts(peerId: string, collection: string): boolean
  frameOut(peerId: string, bytes: number, collection: string): void
  stored(peerId: string, collection: string, count: number): void
}

/** Per-session figures (tests and benchmarks). */
export interface HistoryCounters {
  framesIn: number
  bytesIn: number
  framesOut: number
  bytesOut: number
  /** Entries sent, received, and stored here (new and within retention). */
  itemsOut: number
  itemsIn: number
  stored: number
}

/** Ranges per HISTORY_RANGES frame, items per HISTORY_ITEMS or HISTORY_WANT frame. */
const RANGES_PER_FRAME = 256
const ITEMS_PER_FRAME = 1000
const ITEM_BYTES_PER_FRAME = 1024 * 1024
/** Entries are read for the next frame once the link holds at most this much unsent. */
const PUSH_BUFFERED_BYTES = 4 * 1024 * 1024
/** A collection's set is read again after this long (or once entries were stored). */
const SET_TTL_MS = 30_000
/** A peer whose window moved on is answered with a new opening at most this often per collection. */
const MAX_RESTARTS = 3

export class HistoryExchange {
  readonly counters: HistoryCounters = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, itemsOut: 0, itemsIn: 0, stored: 0 }
  private readonly sets = new Map<string, { since: number; at: number; set: Promise<HistorySet> }>()
  private readonly restarts = new Map<string, number>()
  /** Collections whose reconciliation was opened on this session. */
  private readonly begun = new Set<string>()

  constructor(
    private readonly relay: HistoryRelay,
    private readonly link: PeerLink,
    private readonly session: HistorySession,
    private readonly now: () => number,
  ) {}

  /**
   * Open the reconciliation of a collection, once per session, when this side initiates: the
   * engine calls it when the peer's first update of the collection on this session was merged
   * (its answer to the hello's STEP1), so a joiner has the collection and its settings by then.
   */
  async begin(collection: string): Promise<void> {
    const host = this.relay.history
    if (host === undefined || this.begun.has(collection) || this.session.isClosed || !host.initiates(this.session.peerId)) return
    this.begun.add(collection)
    const since = this.window(host, collection)
    if (since !== undefined) await this.open(collection, since)
  }

  /** Collections whose set of items this session holds now (tests). */
  get cachedSets(): number {
    return this.sets.size
  }

  async receive(bytes: Uint8Array): Promise<void> {
    if (!this.session.isReady) throw new KitsyncError('PROTOCOL_ERROR', 'history frame before hello')
    this.counters.framesIn++
    this.counters.bytesIn += bytes.byteLength
    const frame = decodeHistoryFrame(bytes)
    const host = this.relay.history
    if (host === undefined) return
    const since = this.window(host, frame.collection)
    if (since === undefined) return // not exchanged with this peer, or no history kept here: nothing told or taken
    switch (frame.type) {
      case HistoryFrameType.HISTORY_RANGES:
        return this.ranges(frame, since)
      case HistoryFrameType.HISTORY_WANT:
        return this.push(host, frame.collection, frame.ids)
      case HistoryFrameType.HISTORY_ITEMS: {
        if (!this.relay.accepts(this.session.peerId, frame.collection)) return
        this.counters.itemsIn += frame.items.length
        const stored = await host.store(frame.collection, frame.items, this.session.peerId)
        if (stored > 0) {
          this.sets.delete(frame.collection)
          this.counters.stored += stored
          this.relay.stored(this.session.peerId, frame.collection, stored)
        }
        return
      }
    }
  }

  /** The retention window of a collection on this session; undefined: its history is not exchanged. */
  private window(host: HistorySyncHost, collection: string): number | undefined {
    if (!keepsHistory(collection) || !this.session.shares(collection)) return undefined
    return host.since(collection)
  }

  private async open(collection: string, since: number): Promise<void> {
    const set = await this.setOf(collection, since)
    this.send({ type: HistoryFrameType.HISTORY_RANGES, collection, since, lower: '', ranges: openingRanges(set) })
  }

  private async ranges(frame: Extract<HistoryFrame, { type: 20 }>, mine: number): Promise<void> {
    const { collection } = frame
    const restarts = this.restarts.get(collection) ?? 0
    if (mine > frame.since && restarts < MAX_RESTARTS) {
      // This device keeps a shorter window: start over on it (the peer follows the larger since).
      this.restarts.set(collection, restarts + 1)
      return this.open(collection, mine)
    }
    const set = await this.setOf(collection, frame.since)
    const step = reconcile(set, frame.lower, frame.ranges)
    let lower = step.lower
    for (let i = 0; i < step.ranges.length; i += RANGES_PER_FRAME) {
      const ranges: HistoryRange[] = step.ranges.slice(i, i + RANGES_PER_FRAME)
      this.send({ type: HistoryFrameType.HISTORY_RANGES, collection, since: frame.since, lower, ranges })
      lower = ranges[ranges.length - 1]?.upper ?? lower
    }
    for (let i = 0; i < step.want.length; i += ITEMS_PER_FRAME) {
      this.send({ type: HistoryFrameType.HISTORY_WANT, collection, ids: step.want.slice(i, i + ITEMS_PER_FRAME) })
    }
    const host = this.relay.history
    if (host !== undefined) await this.push(host, collection, step.push)
  }

  /** Send these entries, read and sent a slice at a time at the link's pace (a joiner may lack a million). */
  private async push(host: HistorySyncHost, collection: string, ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length && !this.session.isClosed; i += ITEMS_PER_FRAME) {
      if (i > 0) await this.link.whenBelow?.(PUSH_BUFFERED_BYTES)
      this.sendItems(collection, await host.entries(collection, ids.slice(i, i + ITEMS_PER_FRAME)))
    }
  }

  private sendItems(collection: string, items: HistoryItem[]): void {
    let batch: HistoryItem[] = []
    let bytes = 0
    for (const item of items) {
      if (batch.length >= ITEMS_PER_FRAME || (batch.length > 0 && bytes + item.entry.byteLength > ITEM_BYTES_PER_FRAME)) {
        this.send({ type: HistoryFrameType.HISTORY_ITEMS, collection, items: batch })
        batch = []
        bytes = 0
      }
      batch.push(item)
      bytes += item.entry.byteLength + item.id.length
    }
    if (batch.length > 0) this.send({ type: HistoryFrameType.HISTORY_ITEMS, collection, items: batch })
    this.counters.itemsOut += items.length
  }

  private setOf(collection: string, since: number): Promise<HistorySet> {
    const cached = this.sets.get(collection)
    if (cached !== undefined && cached.since === since && this.now() - cached.at < SET_TTL_MS) return cached.set
    const host = this.relay.history as HistorySyncHost
    const set = host.items(collection, since).then((ids) => new HistorySet(ids))
    const entry = { since, at: this.now(), set }
    this.sets.set(collection, entry)
    const forget = (): void => {
      if (this.sets.get(collection) === entry) this.sets.delete(collection)
    }
    set.catch(forget)
    // Let go of it once it would be read again anyway: a connected, idle session kept the ids of
    // every entry in the window (100,000 records: ~10 MB of heap) for as long as it lasted.
    const timer = setTimeout(forget, SET_TTL_MS)
    timer.unref?.()
    return set
  }

  private send(frame: HistoryFrame): void {
    if (this.session.isClosed) return
    const bytes = encodeHistoryFrame(frame)
    this.counters.framesOut++
    this.counters.bytesOut += bytes.byteLength
    this.relay.frameOut(this.session.peerId, bytes.byteLength, frame.collection)
    this.link.send(bytes)
  }
}
