import * as Y from 'yjs'

/**
 * The live updates waiting to go to one peer. Updates of a tick are merged per collection and
 * sent at its end, so a burst of transactions costs the peer a few frames, not one each.
 */

/** From this many queued updates of one collection, a flush encodes the document's gain instead of merging them. */
export const DIFF_FROM_DOC_AT = 64

/** What the outbox of one session needs from it. */
export interface OutboxHost {
  /** Unsent bytes allowed (queued here plus buffered in the link) before `overflow`. */
  readonly maxBufferedBytes: number
  /** How a flush is scheduled (the engine's tick). */
  schedule(fn: () => void): void
  /** Bytes queued in the link and not yet written. */
  bufferedBytes(): number
  /** The peer's hello has arrived: updates may go out. */
  isReady(): boolean
  isClosed(): boolean
  /** Whether a collection is exchanged on the session now. */
  shares(collection: string): boolean
  loadedDoc(collection: string): Y.Doc | undefined
  /** Send one merged update of a collection to the peer. */
  send(collection: string, payload: Uint8Array): void
  /** The peer does not keep up: over `maxBufferedBytes` unsent. */
  overflow(): void
  /** A flush ended (the updates queued so far are sent). */
  flushed(): void
}

export class UpdateOutbox {
  private readonly host: OutboxHost
  /** Updates waiting for the next flush, per collection, with the document's state before the first of them. */
  private readonly pending = new Map<string, { updates: Uint8Array[]; before: Map<number, number> | undefined }>()
  private pendingBytes = 0
  private flushScheduled = false

  constructor(host: OutboxHost) {
    this.host = host
  }

  /** Bytes queued and not sent yet. */
  get bytes(): number {
    return this.pendingBytes
  }

  /** Queue a local (or relayed) update; merged and sent on the next tick. */
  enqueue(collection: string, update: Uint8Array, before?: Map<number, number>): void {
    // Before the peer's hello, updates are held, not dropped: the hello may not list a
    // collection created meanwhile, and then no state-vector exchange would cover it.
    if (this.host.isClosed()) return
    let list = this.pending.get(collection)
    if (list === undefined) this.pending.set(collection, (list = { updates: [], before: before === undefined ? undefined : new Map(before) }))
    list.updates.push(update)
    this.pendingBytes += update.byteLength
    if (this.pendingBytes + this.host.bufferedBytes() > this.host.maxBufferedBytes) {
      this.host.overflow()
      return
    }
    // The first update of a tick on an idle session goes out at once; the ones that follow in
    // the same tick (or while the link is still writing) are merged and sent at its end.
    if (this.host.isReady() && !this.flushScheduled && this.pending.size === 1 && list.updates.length === 1 && this.host.bufferedBytes() === 0) {
      this.flush()
      this.flushScheduled = true
      this.host.schedule(() => this.flush())
      return
    }
    this.scheduleFlush()
  }

  /**
   * Send a peer's update on (update-relay.ts) at once: it comes merged already (one frame per
   * tick of its sender), and waiting for the end of this tick would make it wait for this
   * device's processing of it. Queued as usual (merged, sent at the end of the tick) if the
   * peer is not ready, or a frame went out in this tick already: like local updates, at most
   * two frames a tick, so peers relaying to this one cannot add up to more than its frame rate.
   */
  relay(collection: string, update: Uint8Array): void {
    if (this.host.isClosed()) return
    if (!this.host.isReady() || this.flushScheduled || this.pending.size > 0) {
      this.enqueue(collection, update)
      return
    }
    if (update.byteLength + this.host.bufferedBytes() > this.host.maxBufferedBytes) {
      this.host.overflow()
      return
    }
    this.host.send(collection, update)
    this.flushScheduled = true
    this.host.schedule(() => this.flush())
  }

  /** Flush on the next tick if anything is queued and the peer is ready for it. */
  scheduleFlush(): void {
    if (this.flushScheduled || !this.host.isReady() || this.pending.size === 0) return
    this.flushScheduled = true
    this.host.schedule(() => this.flush())
  }

  /** Drop everything queued (the session closed). */
  clear(): void {
    this.pending.clear()
    this.pendingBytes = 0
  }

  private flush(): void {
    this.flushScheduled = false
    if (this.host.isClosed()) return
    // Collections with the fewest updates first: an alert changed during a big import goes out
    // ahead of the import, not behind it.
    const queued = [...this.pending].sort(([, a], [, b]) => a.updates.length - b.updates.length)
    for (const [collection, { updates, before }] of queued) {
      // Held since before the peer's interest arrived (or since it narrowed): not wanted now.
      if (!this.host.shares(collection)) continue
      // Many updates: encoding what the document gained since the first of them is far cheaper
      // than merging them (and gives the same content, perhaps with updates the peer already has).
      const doc = this.host.loadedDoc(collection)
      const payload =
        updates.length >= DIFF_FROM_DOC_AT && before !== undefined && doc !== undefined
          ? Y.encodeStateAsUpdate(doc, Y.encodeStateVector(before))
          : mergeInGroups(updates)
      this.host.send(collection, payload)
    }
    this.clear()
    this.host.flushed()
  }
}

/**
 * Y.mergeUpdates slows down sharply with the number of inputs (10,000 small updates: over a
 * second); merging in groups of 32, level by level, gives the same update in a tenth of that.
 */
export function mergeInGroups(updates: Uint8Array[]): Uint8Array {
  let level = updates
  while (level.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i < level.length; i += 32) {
      const group = level.slice(i, i + 32)
      next.push(group.length === 1 ? (group[0] as Uint8Array) : Y.mergeUpdates(group))
    }
    level = next
  }
  return level[0] ?? new Uint8Array([0, 0])
}
