import { debugLog } from '../core/debug-log.js'
import { isKitsyncError, KitsyncError } from '../core/errors.js'
import {
  decodeUnitFrame,
  encodeUnitFrame,
  UNIT_BUCKETS,
  unitBucket,
  UnitFrameType,
  UnitStep,
  type UnitDigest,
  type UnitFrame,
} from '../protocol/unit-frames.js'
import type { SyncEvents } from './sync-events.js'
import type { PeerLink, SyncHost } from './sync-host.js'
import type { UnitSyncHost } from './unit-host.js'
import { mergeInGroups } from './update-outbox.js'

/**
 * The units and blobs of one sync session (frames: protocol/unit-frames.ts). Catch-up per
 * collection: both sides send their bucket sums, then the units of the buckets that differ, then
 * WANT the units whose digests differ, each answered with what the asker lacks. Live: a committed
 * unit update goes to the peer at the end of the tick, merged per unit. Units of a collection
 * the session does not exchange are neither listed, nor sent, nor taken.
 */

/** What the units of a session need from the engine (the session's owner). */
export interface UnitRelay {
  readonly host: SyncHost
  readonly limits: { readonly maxFrameBytes: number }
  readonly schedule: (fn: () => void) => void
  emit<K extends keyof SyncEvents>(event: K, payload: SyncEvents[K]): void
  /** Pass a peer's update of a unit on to every other session that exchanges its collection. */
  forwardUnit(collection: string, unit: string, update: Uint8Array, from: UnitExchange | undefined): void
  /** A peer answered a BLOB_WANT (`bytes` undefined: it has none). */
  blobAnswer(hash: string, bytes: Uint8Array | undefined, peerId: string): void
}

/** The session the units ride on. */
export interface UnitSession {
  readonly peerId: string
  readonly isReady: boolean
  readonly isClosed: boolean
  shares(collection: string): boolean
}

const log = debugLog('sync:units')

/** Units asked for per UNIT_WANT frame. */
const WANTS_PER_FRAME = 1000

/** Per-session figures of the unit exchange (for tests and benchmarks). */
export interface UnitCounters {
  framesIn: number
  bytesIn: number
  framesOut: number
  bytesOut: number
  /** Units asked for with UNIT_WANT on this session. */
  wanted: number
}

export class UnitExchange {
  readonly counters: UnitCounters = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, wanted: 0 }
  /** Collections whose sums were sent since the peer's sums for them last arrived (so they are not sent back). */
  private readonly sumsSent = new Set<string>()
  /** Collections whose catch-up ran on this session (at the hello, or asked by the peer). */
  private readonly started = new Set<string>()
  /** Live updates waiting for the end of the tick, per collection and unit. */
  private pending = new Map<string, { collection: string; unit: string; updates: Uint8Array[] }>()
  private flushScheduled = false

  constructor(
    private readonly relay: UnitRelay,
    private readonly link: PeerLink,
    private readonly session: UnitSession & { close(error?: KitsyncError): void },
    /** The session's own counters, which count these frames too. */
    private readonly sessionStats: { bytesOut: number; framesOut: number },
  ) {}

  private get host(): UnitSyncHost | undefined {
    return this.relay.host.units
  }

  /**
   * Send the sums of every collection exchanged that holds units here: at the peer's hello, and
   * again (`again`) when the exchange is run anew (`sync now`).
   */
  async start(collections: Iterable<string>, again = false): Promise<void> {
    const host = this.host
    if (host === undefined) return
    for (const collection of [...collections].sort()) {
      if (this.session.isClosed) return
      if ((!again && this.started.has(collection)) || !this.session.shares(collection)) continue
      this.started.add(collection)
      const digests = await this.digestsOf(host, collection)
      if (digests === undefined) continue
      // Again: even without units here (one byte of sums), the peer may have some.
      if ((digests.length > 0 || again) && !this.sumsSent.has(collection)) this.sendSums(collection, digests)
    }
  }

  /**
   * The peer's interest changed: a collection no longer exchanged counts as never started, and one
   * exchanged now that was not (its units were neither listed nor sent meanwhile) runs its catch-up,
   * sums sent even when none is held here (the peer may have some).
   */
  async reshared(collections: Iterable<string>): Promise<void> {
    for (const collection of this.started) if (!this.session.shares(collection)) this.started.delete(collection)
    const fresh = [...collections].filter((collection) => !this.started.has(collection))
    for (const collection of fresh) this.sumsSent.delete(collection)
    await this.start(fresh, true)
  }

  /** Queue a committed (or relayed) update of a unit; sent merged at the end of the tick. */
  enqueue(collection: string, unit: string, update: Uint8Array): void {
    if (this.session.isClosed || !this.session.isReady) return // the catch-up at the hello covers it
    const key = `${collection}\0${unit}`
    const entry = this.pending.get(key)
    if (entry === undefined) this.pending.set(key, { collection, unit, updates: [update] })
    else entry.updates.push(update)
    if (this.flushScheduled) return
    this.flushScheduled = true
    this.relay.schedule(() => this.flush())
  }

  /** Drop what is queued (the session closed). */
  clear(): void {
    this.pending.clear()
  }

  /** Ask the peer for a blob. */
  wantBlob(hash: string): void {
    this.send({ type: UnitFrameType.BLOB_WANT, hash })
  }

  /** Handle one unit or blob frame from the peer (after its hello). */
  async receive(bytes: Uint8Array): Promise<void> {
    if (!this.session.isReady) throw new KitsyncError('PROTOCOL_ERROR', 'unit frame before hello')
    this.counters.framesIn++
    this.counters.bytesIn += bytes.byteLength
    const frame = decodeUnitFrame(bytes)
    const host = this.host
    if (host === undefined) {
      // A device without units: it has none of anything asked for.
      if (frame.type === UnitFrameType.BLOB_WANT) this.send({ type: UnitFrameType.BLOB, hash: frame.hash, bytes: undefined })
      return
    }
    switch (frame.type) {
      case UnitFrameType.BLOB_WANT: {
        let bytes = host.exchangesBlobs(this.session.peerId) ? await host.localBlob(frame.hash) : undefined
        // Over the frame limit, it cannot be sent: as good as not held (blobs stay under the folder size cap).
        if (bytes !== undefined && bytes.byteLength + 64 > this.relay.limits.maxFrameBytes) bytes = undefined
        this.send({ type: UnitFrameType.BLOB, hash: frame.hash, bytes })
        return
      }
      case UnitFrameType.BLOB:
        this.relay.blobAnswer(frame.hash, host.exchangesBlobs(this.session.peerId) ? frame.bytes : undefined, this.session.peerId)
        return
    }
    if (!this.session.shares(frame.collection)) return // not exchanged with this peer: nothing is told or taken
    switch (frame.type) {
      case UnitFrameType.UNIT_SUMS:
        await this.sums(host, frame.collection, frame.sums)
        return
      case UnitFrameType.UNIT_LIST:
        await this.list(host, frame.collection, frame.buckets)
        return
      case UnitFrameType.UNIT_WANT:
        for (const { unit, vector } of frame.wants) {
          const payload = (await this.stored(() => host.diff(frame.collection, unit, vector), `unit ${unit} of ${frame.collection}`)) ?? new Uint8Array([0, 0])
          this.send({ type: UnitFrameType.UNIT_UPDATE, collection: frame.collection, unit, step: UnitStep.ANSWER, payload })
        }
        return
      case UnitFrameType.UNIT_UPDATE: {
        if (this.relay.host.accepts?.(this.session.peerId, frame.collection) === false) return
        if (await host.applyRemote(frame.collection, frame.unit, frame.payload, this.session.peerId)) {
          this.relay.forwardUnit(frame.collection, frame.unit, frame.payload, this)
        }
        return
      }
    }
  }

  /**
   * The peer's sums: ours back unless ours crossed them on the way (sent since its last), then our
   * units of every bucket whose sums differ. Both sides end with each other's lists.
   */
  private async sums(host: UnitSyncHost, collection: string, theirs: Uint32Array): Promise<void> {
    this.started.add(collection)
    const digests = await this.digestsOf(host, collection)
    if (digests === undefined) return
    const ours = sumsOf(digests)
    if (!this.sumsSent.has(collection)) this.sendSums(collection, digests, ours)
    this.sumsSent.delete(collection)
    const differ = new Set<number>()
    for (let b = 0; b < UNIT_BUCKETS; b++) if (ours[b] !== theirs[b]) differ.add(b)
    if (differ.size === 0) return
    const buckets = new Map<number, UnitDigest[]>([...differ].map((b) => [b, []]))
    for (const d of digests) buckets.get(unitBucket(d.unit))?.push(d)
    this.send({ type: UnitFrameType.UNIT_LIST, collection, buckets: [...buckets].map(([bucket, units]) => ({ bucket, units })) })
  }

  /** The peer's units of the buckets that differ: WANT each whose digest differs from ours (or that we lack). */
  private async list(host: UnitSyncHost, collection: string, buckets: { bucket: number; units: UnitDigest[] }[]): Promise<void> {
    const digests = await this.digestsOf(host, collection)
    if (digests === undefined) return
    const ours = new Map(digests.map((d) => [d.unit, d.digest]))
    const want: string[] = []
    for (const { units } of buckets) for (const { unit, digest } of units) if (ours.get(unit) !== digest) want.push(unit)
    if (want.length === 0) return
    this.counters.wanted += want.length
    this.relay.emit('units-wanted', { peerId: this.session.peerId, collection, units: want })
    for (let i = 0; i < want.length; i += WANTS_PER_FRAME) {
      const wants: { unit: string; vector: Uint8Array }[] = []
      for (const unit of want.slice(i, i + WANTS_PER_FRAME)) wants.push({ unit, vector: await host.stateVector(collection, unit) })
      if (this.session.isClosed) return
      this.send({ type: UnitFrameType.UNIT_WANT, collection, wants })
    }
  }

  /** The collection's digests, or undefined when its units cannot be read here (see stored). */
  private digestsOf(host: UnitSyncHost, collection: string): Promise<UnitDigest[] | undefined> {
    return this.stored(() => host.digests(collection), `the units of ${collection}`)
  }

  /**
   * A read of stored units: one that fails here (a damaged unit, DATA_CORRUPTION; a failing disk)
   * leaves that collection or unit out of this exchange (answered as not held), rather than ending
   * the session and with it every other collection's sync. A peer's malformed input still does.
   */
  private async stored<T>(read: () => Promise<T>, what: string): Promise<T | undefined> {
    try {
      return await read()
    } catch (err) {
      if (!isKitsyncError(err, 'DATA_CORRUPTION') && !isKitsyncError(err, 'STORAGE_FAILED')) throw err
      log(`${what} cannot be read; left out of the exchange with ${this.session.peerId}`, err)
      return undefined
    }
  }

  private sendSums(collection: string, digests: UnitDigest[], sums = sumsOf(digests)): void {
    this.sumsSent.add(collection)
    this.send({ type: UnitFrameType.UNIT_SUMS, collection, sums })
  }

  private flush(): void {
    this.flushScheduled = false
    const pending = this.pending
    this.pending = new Map()
    if (this.session.isClosed) return
    for (const { collection, unit, updates } of pending.values()) {
      if (!this.session.shares(collection)) continue
      this.send({ type: UnitFrameType.UNIT_UPDATE, collection, unit, step: UnitStep.LIVE, payload: mergeInGroups(updates) })
    }
  }

  private send(frame: UnitFrame): void {
    if (this.session.isClosed) return
    const bytes = encodeUnitFrame(frame)
    if (bytes.byteLength > this.relay.limits.maxFrameBytes) {
      const what = 'unit' in frame ? `unit ${frame.unit} of ${frame.collection}` : 'units'
      this.session.close(new KitsyncError('PROTOCOL_ERROR', `a frame for ${what} would be ${bytes.byteLength} bytes, over the limit`))
      return
    }
    this.counters.framesOut++
    this.counters.bytesOut += bytes.byteLength
    this.sessionStats.framesOut++
    this.sessionStats.bytesOut += bytes.byteLength
    this.link.send(bytes)
  }
}

/** The bucket sums of a collection's digests (UNIT_SUMS). */
export function sumsOf(digests: readonly UnitDigest[]): Uint32Array {
  const sums = new Uint32Array(UNIT_BUCKETS)
  for (const { unit, digest } of digests) {
    const b = unitBucket(unit)
    sums[b] = ((sums[b] as number) + digest) >>> 0
  }
  return sums
}
