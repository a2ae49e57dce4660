import * as Y from 'yjs'
import { TypedEmitter } from '../core/emitter.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { Interest, type InterestRule } from '../core/selection.js'
import { decodeFrame, encodeFrame, encodeFrameParts, FrameType, SYNC_PROTOCOL_VERSION, SyncStep, type Frame, type RevokedFrame } from '../protocol/sync-frames.js'
import { SyncStats } from './sync-stats.js'

/**
 * The sync engine of one device: pure, no I/O. It keeps one session per connected peer and,
 * per collection, runs the y-protocols exchange (state vector -> missing updates), then
 * forwards live updates to every other session, merged per tick. An update is never sent
 * back to the session it came from (it is applied with that session as origin), and Yjs
 * emits nothing for an update it already has, so loops in the mesh die out by themselves.
 * Transports (libp2p, or an in-memory pair in tests) plug in as PeerLinks.
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

export interface SyncLimits {
  /** Largest frame either side sends or accepts. */
  maxFrameBytes: number
  /** Frames a peer may send per second on average, and in one burst. Over it: RATE_LIMITED. */
  framesPerSecond: number
  frameBurst: number
  /** Unsent bytes allowed per peer before the session is dropped (it resyncs on reconnect). */
  maxBufferedBytes: number
}

export const DEFAULT_SYNC_LIMITS: SyncLimits = {
  maxFrameBytes: 64 * 1024 * 1024,
  maxBufferedBytes: 128 * 1024 * 1024,
  // Live updates are merged per tick, so even a busy peer sends few frames; a hello with many
  // collections sends one per collection at once, hence the large burst.
  framesPerSecond: 2_000,
  frameBurst: 20_000,
}

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
  progress: { peerId: string; collectionsDone: number; collectionsTotal: number; bytesIn: number }
  /** The peer refused this device as revoked (a REVOKED frame, not verified here; the session is closed). */
  revoked: { peerId: string; notice: RevokedFrame }
}

/** The outcome of one state-vector exchange with a peer (see SyncSession.resync). */
export interface RoundResult {
  /** Every collection asked for was answered. */
  complete: boolean
  collections: number
  collectionsDone: number
}

/** Throttle of progress events within one exchange (the first and the last are always sent). */
const PROGRESS_INTERVAL_MS = 200

export interface SessionStats {
  peerId: string
  connectedAt: number
  ready: boolean
  caughtUp: boolean
  bytesIn: number
  bytesOut: number
  framesIn: number
  framesOut: number
  /** Last time an update from this peer was merged, or our updates were sent to it. */
  lastSyncAt: number | undefined
  /** Bytes waiting to go to this peer (engine queue plus transport buffer). */
  unsentBytes: number
}

const COLLECTION = /^_?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** How long a stored state read for a device just admitted waits for its session (see SyncEngine.expectNewDevice). */
export const READ_AHEAD_MS = 20_000

/** A Yjs update that holds nothing: no structs, empty delete set. */
const EMPTY_UPDATE = new Uint8Array([0, 0])
const EMPTY_STATE_VECTOR = new Uint8Array([0])

/** A state vector with no clients: the peer has nothing of the collection. */
function isEmptyStateVector(vector: Uint8Array): boolean {
  return vector.byteLength === 1 && vector[0] === 0
}

function isEmptyUpdate(update: Uint8Array): boolean {
  return update.byteLength === 2 && update[0] === 0 && update[1] === 0
}

export interface SyncEngineOptions {
  limits?: Partial<SyncLimits>
  /** How a flush of merged updates is scheduled (setImmediate in Node; a microtask by default). */
  schedule?: (fn: () => void) => void
  now?: () => number
}

export class SyncEngine extends TypedEmitter<SyncEvents> {
  readonly host: SyncHost
  readonly limits: SyncLimits
  readonly schedule: (fn: () => void) => void
  readonly now: () => number
  private readonly docs = new Map<string, Y.Doc>()
  private readonly active = new Set<SyncSession>()
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  /** Stored states read for devices just admitted, before their first session (see expectNewDevice); a change to a collection drops its reads. */
  private readonly readAhead = new Map<string, { reads: Map<string, Promise<Uint8Array[] | undefined>>; timer: ReturnType<typeof setTimeout> }>()
  /** Totals over all sessions, for status and tests. */
  readonly totals = { framesIn: 0, sessionsFailed: 0 }
  /** Counters per peer and per collection (kitsync stats). */
  readonly stats: SyncStats

  constructor(host: SyncHost, options: SyncEngineOptions = {}) {
    super()
    this.host = host
    this.limits = { ...DEFAULT_SYNC_LIMITS, ...options.limits }
    this.schedule = options.schedule ?? queueMicrotask
    this.now = options.now ?? Date.now
    this.stats = new SyncStats(this.now)
  }

  /** Start a session over a new link; it says hello at once. */
  attach(link: PeerLink): SyncSession {
    const session = new SyncSession(this, link)
    this.active.add(session)
    session.start()
    return session
  }

  sessions(): SyncSession[] {
    return [...this.active]
  }

  /** The open sessions with one peer (two only while a simultaneous open is being settled). */
  sessionsWith(peerId: string): SyncSession[] {
    return [...this.active].filter((s) => s.peerId === peerId && !s.isClosed)
  }

  /** Forward this document's updates to peers. Idempotent; the host calls it for every loaded doc. */
  track(name: string, doc: Y.Doc): void {
    if (this.docs.get(name) === doc) return
    this.docs.set(name, doc)
    doc.on('update', (update: Uint8Array, origin: unknown, _doc: Y.Doc, tr: Y.Transaction) => {
      // A read started before this update does not hold it, and the device has no session yet to send it on.
      if (this.readAhead.size > 0) for (const ahead of this.readAhead.values()) ahead.reads.delete(name)
      for (const session of this.active) if (session !== origin && session.shares(name)) session.enqueue(name, update, tr.beforeState)
    })
  }

  /** Queue an update for every session but `from` that exchanges the collection. */
  forward(name: string, update: Uint8Array, from: SyncSession | undefined): void {
    for (const session of this.active) if (session !== from && session.shares(name)) session.enqueue(name, update)
  }

  /** The document of a tracked collection, if loaded. */
  loadedDoc(name: string): Y.Doc | undefined {
    return this.docs.get(name)
  }

  /** The host's document of a collection if it is loaded now (tracked), else undefined. */
  readyDoc(name: string): Y.Doc | undefined {
    const doc = this.host.loadedDoc?.(name)
    if (doc !== undefined) this.track(name, doc)
    return doc
  }

  async doc(name: string): Promise<Y.Doc> {
    const doc = await this.host.openDoc(name)
    this.track(name, doc)
    return doc
  }

  /**
   * A device was just admitted to the workspace: it holds nothing yet, and its first session
   * will ask for every collection it shares. Start reading their stored state now, while the
   * pairing ends and the device opens its session, instead of once its hello arrives. A read
   * is kept for READ_AHEAD_MS, and dropped if the collection changes meanwhile (a write made
   * before the session existed would not reach the device otherwise): the session reads again.
   */
  expectNewDevice(peerId: string): void {
    const host = this.host
    if (host.storedState === undefined) return
    this.takeReadAhead(peerId)
    const reads = new Map<string, Promise<Uint8Array[] | undefined>>()
    for (const name of this.docs.keys()) {
      if (!this.shares(peerId, name)) continue
      const read = host.storedState(name)
      read.catch(() => undefined)
      reads.set(name, read)
    }
    const timer = setTimeout(() => this.readAhead.delete(peerId), READ_AHEAD_MS)
    timer.unref?.()
    this.readAhead.set(peerId, { reads, timer })
  }

  /** @internal The stored states read ahead for this device (of the collections unchanged since), handed out once. */
  takeReadAhead(peerId: string): Map<string, Promise<Uint8Array[] | undefined>> | undefined {
    const ahead = this.readAhead.get(peerId)
    if (ahead === undefined) return undefined
    clearTimeout(ahead.timer)
    this.readAhead.delete(peerId)
    return ahead.reads
  }

  /** Whether a collection is exchanged with a peer (see SyncHost.shares). */
  shares(peerId: string, collection: string): boolean {
    return this.host.shares?.(peerId, collection) ?? true
  }

  /** Token bucket per peer (not per stream, so opening new streams buys a peer nothing). */
  takeFrameToken(peerId: string): boolean {
    const now = this.now()
    const bucket = this.buckets.get(peerId) ?? { tokens: this.limits.frameBurst, at: now }
    bucket.tokens = Math.min(this.limits.frameBurst, bucket.tokens + ((now - bucket.at) / 1000) * this.limits.framesPerSecond)
    bucket.at = now
    this.buckets.set(peerId, bucket)
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }

  /**
   * The host's selection changed: tell every peer the new interest, and ask for what this
   * device now syncs and has not exchanged on that session yet.
   */
  async refreshInterest(): Promise<void> {
    await Promise.all([...this.active].map((s) => s.interestChanged()))
  }

  /** Close every session (the engine stays usable). */
  closeAll(): void {
    for (const session of [...this.active]) session.close()
  }

  /** @internal */
  removed(session: SyncSession, error: KitsyncError | undefined): void {
    if (!this.active.delete(session)) return
    if (error !== undefined) this.totals.sessionsFailed++
    this.emit('offline', error === undefined ? { peerId: session.peerId } : { peerId: session.peerId, error })
  }
}

interface Round {
  /** Collection -> how many answers for it must have arrived. */
  waiting: Map<string, number>
  total: number
  done: number
  bytesInAtStart: number
  progress: boolean
  lastProgressAt: number
  resolve: (result: RoundResult) => void
}

export class SyncSession {
  readonly peerId: string
  private readonly engine: SyncEngine
  private readonly link: PeerLink
  private ready = false
  private closed = false
  private awaiting = new Set<string>()
  private caughtUp = false
  private inbox: Promise<void> = Promise.resolve()
  /** Frames received and not yet handled to the end (the one in hand included). */
  private handling = 0
  /** Updates waiting for the next flush, per collection, with the document's state before the first of them. */
  private readonly pending = new Map<string, { updates: Uint8Array[]; before: Map<number, number> | undefined }>()
  private pendingBytes = 0
  private flushScheduled = false
  private readonly stats = { connectedAt: 0, bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0, lastSyncAt: undefined as number | undefined }
  /** What the peer asked for in its INTEREST (undefined: it sent none, so everything). */
  private peerInterest: Interest | undefined
  /** Collections the peer named (in its hello or by asking with STEP1): it may have data for them. */
  private readonly peerNamed = new Set<string>()
  /** Collections this side asked for (STEP1 sent) on this session. */
  private readonly exchanged = new Set<string>()
  /** STEP1 sent and STEP2 received, per collection: answers come in order, so counts match them up. */
  private readonly asked = new Map<string, number>()
  private readonly answered = new Map<string, number>()
  private readonly rounds = new Set<Round>()
  private readonly readyWaiters: (() => void)[] = []
  private interestSent: string | undefined
  /** Stored states being read for collections the peer's hello showed it lacks (it asks for them next). */
  private readonly prefetched = new Map<string, Promise<Uint8Array[] | undefined>>()

  constructor(engine: SyncEngine, link: PeerLink) {
    this.engine = engine
    this.link = link
    this.peerId = link.peerId
    this.stats.connectedAt = engine.now()
  }

  start(): void {
    // The interest goes first, so the peer knows what to send before it answers the hello.
    const rules = this.engine.host.interest?.()
    if (rules !== undefined) this.sendInterest(rules)
    this.send({ type: FrameType.HELLO, version: SYNC_PROTOCOL_VERSION, workspaceId: this.engine.host.workspaceId, collections: this.sharedNames(this.engine.host.collectionNames()) })
  }

  /** Whether a collection is exchanged on this session: this device syncs it, and the peer's interest wants it. */
  shares(collection: string): boolean {
    if (!this.engine.shares(this.peerId, collection)) return false
    return this.peerInterest === undefined || this.peerInterest.wants(collection)
  }

  /** Feed one frame received from the peer. Frames are handled strictly in order. */
  receive(bytes: Uint8Array): void {
    if (this.closed) return
    this.stats.bytesIn += bytes.byteLength
    this.stats.framesIn++
    this.engine.totals.framesIn++
    this.engine.stats.frameIn(this.peerId, bytes.byteLength)
    if (!this.engine.takeFrameToken(this.peerId)) {
      this.close(new KitsyncError('RATE_LIMITED', `peer ${this.peerId} sent more than ${this.engine.limits.framesPerSecond} frames per second`))
      return
    }
    // An idle session handles the frame at once, in the transport's event: a small update is
    // merged (and its change events fired) before the transport does anything else, such as
    // answering with a window update. Otherwise it waits its turn behind the earlier frames.
    this.handling++
    const run = this.handling === 1 ? this.handle(bytes) : this.inbox.then(() => this.handle(bytes))
    this.inbox = run.catch((err: unknown) => this.close(toKitsyncError(err))).finally(() => this.handling--)
  }

  /** Resolves when every frame received so far has been handled. */
  idle(): Promise<void> {
    return this.inbox
  }

  getStats(): SessionStats {
    return { peerId: this.peerId, ready: this.ready, caughtUp: this.caughtUp, ...this.stats, unsentBytes: this.pendingBytes + this.link.bufferedBytes }
  }

  get isCaughtUp(): boolean {
    return this.caughtUp
  }

  get isReady(): boolean {
    return this.ready
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** Resolves once the peer's hello has arrived (at once if it has), or the session closed. */
  whenReady(): Promise<void> {
    if (this.ready || this.closed) return Promise.resolve()
    return new Promise((resolve) => this.readyWaiters.push(resolve))
  }

  /**
   * Run the state-vector exchange again for `collections` (default: every collection shared on
   * this session) and resolve once the peer has answered each one, or the session closed.
   */
  async resync(collections?: readonly string[], options: { progress?: boolean } = {}): Promise<RoundResult> {
    if (this.closed) return { complete: false, collections: 0, collectionsDone: 0 }
    await this.whenReady()
    const names = collections === undefined ? this.sharedNames([...new Set([...this.engine.host.collectionNames(), ...this.peerNamed])]) : [...collections]
    const round = this.openRound(options.progress ?? false)
    for (const name of [...new Set(names)].sort()) {
      if (this.closed) break
      await this.request(name, round)
    }
    return this.closeRoundSetup(round)
  }

  /** @internal The host's selection changed (see SyncEngine.refreshInterest). */
  async interestChanged(): Promise<void> {
    if (this.closed) return
    const rules = this.engine.host.interest?.()
    if (rules !== undefined) this.sendInterest(rules)
    if (!this.ready) return
    this.forgetUnshared()
    await this.requestNewlyShared()
  }

  /** End the session; with an error, the peer is told the reason first. */
  close(error?: KitsyncError): void {
    if (this.closed) return
    this.closed = true
    this.pending.clear()
    this.prefetched.clear()
    this.pendingBytes = 0
    this.link.close(error)
    for (const round of this.rounds) round.resolve({ complete: false, collections: round.total, collectionsDone: round.done })
    this.rounds.clear()
    for (const resolve of this.readyWaiters.splice(0)) resolve()
    this.engine.removed(this, error)
  }

  /** @internal Queue a local (or relayed) update for this peer; merged and sent on the next tick. */
  enqueue(collection: string, update: Uint8Array, before?: Map<number, number>): void {
    // Before the peer's hello, updates are held, not dropped: the hello may not list a
    // collection created meanwhile, and then no state-vector exchange would cover it.
    if (this.closed) return
    let list = this.pending.get(collection)
    if (list === undefined) this.pending.set(collection, (list = { updates: [], before: before === undefined ? undefined : new Map(before) }))
    list.updates.push(update)
    this.pendingBytes += update.byteLength
    if (this.pendingBytes + this.link.bufferedBytes > this.engine.limits.maxBufferedBytes) {
      this.close(new KitsyncError('RATE_LIMITED', `peer ${this.peerId} does not keep up: over ${this.engine.limits.maxBufferedBytes} unsent bytes`))
      return
    }
    // The first update of a tick on an idle session goes out at once; the ones that follow in
    // the same tick (or while the link is still writing) are merged and sent at its end.
    if (this.ready && !this.flushScheduled && this.pending.size === 1 && list.updates.length === 1 && this.link.bufferedBytes === 0) {
      this.flush()
      this.flushScheduled = true
      this.engine.schedule(() => this.flush())
      return
    }
    this.scheduleFlush()
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || !this.ready || this.pending.size === 0) return
    this.flushScheduled = true
    this.engine.schedule(() => this.flush())
  }

  private flush(): void {
    this.flushScheduled = false
    if (this.closed) return
    // Collections with the fewest updates first: an alert changed during a big import goes out
    // ahead of the import, not behind it.
    const queued = [...this.pending].sort(([, a], [, b]) => a.updates.length - b.updates.length)
    for (const [collection, { updates, before }] of queued) {
      // Held since before the peer's interest arrived (or since it narrowed): not wanted now.
      if (!this.shares(collection)) continue
      // Many updates: encoding what the document gained since the first of them is far cheaper
      // than merging them (and gives the same content, perhaps with updates the peer already has).
      const doc = this.engine.loadedDoc(collection)
      const payload = updates.length >= DIFF_FROM_DOC_AT && before !== undefined && doc !== undefined ? Y.encodeStateAsUpdate(doc, Y.encodeStateVector(before)) : mergeInGroups(updates)
      this.sendUpdate(collection, SyncStep.UPDATE, payload)
      this.engine.stats.sent(this.peerId, collection)
    }
    this.pending.clear()
    this.pendingBytes = 0
    this.stats.lastSyncAt = this.engine.now()
  }

  private async handle(bytes: Uint8Array): Promise<void> {
    if (this.closed) return
    if (bytes.byteLength > this.engine.limits.maxFrameBytes) {
      throw new KitsyncError('PROTOCOL_ERROR', `frame of ${bytes.byteLength} bytes is over the limit of ${this.engine.limits.maxFrameBytes}`)
    }
    const frame = decodeFrame(bytes)
    if (frame.type === FrameType.ERROR) {
      this.close()
      return
    }
    if (frame.type === FrameType.REVOKED) {
      // The peer says this device was revoked: the owner checks the signature and decides.
      this.engine.emit('revoked', { peerId: this.peerId, notice: frame })
      this.close()
      return
    }
    if (frame.type === FrameType.HELLO) {
      await this.hello(frame)
      return
    }
    if (frame.type === FrameType.INTEREST) {
      this.peerInterest = new Interest(frame.rules)
      // Before the hello nothing was exchanged yet; the hello takes the interest into account.
      if (!this.ready) return
      this.forgetUnshared()
      await this.requestNewlyShared()
      return
    }
    if (!this.ready) throw new KitsyncError('PROTOCOL_ERROR', 'sync frame before hello')
    if (!COLLECTION.test(frame.collection)) throw new KitsyncError('PROTOCOL_ERROR', `invalid collection name ${JSON.stringify(frame.collection)}`)
    this.engine.stats.collectionIn(frame.collection, bytes.byteLength)
    if (frame.step === SyncStep.STEP1) this.peerNamed.add(frame.collection)
    try {
      await this.sync(frame)
    } finally {
      if (frame.step === SyncStep.STEP2) this.answer(frame.collection)
    }
  }

  private async sync(frame: Extract<Frame, { type: 1 }>): Promise<void> {
    if (!this.shares(frame.collection)) {
      // Not exchanged with this peer: answer a request as if we had nothing, drop any data.
      if (frame.step === SyncStep.STEP1) {
        Y.decodeStateVector(frame.payload)
        this.sendUpdate(frame.collection, SyncStep.STEP2, EMPTY_UPDATE)
      } else if (!isEmptyUpdate(frame.payload)) {
        this.engine.stats.dropped(this.peerId, frame.collection)
      }
      return
    }
    if (frame.step === SyncStep.STEP1 && this.engine.host.hasCollection?.(frame.collection) === false) {
      // Nothing here: say so without creating (and holding in memory) an empty collection.
      Y.decodeStateVector(frame.payload)
      this.sendUpdate(frame.collection, SyncStep.STEP2, EMPTY_UPDATE)
      // The peer has it and we sync it but never asked (it was newly wanted): ask now.
      if (!this.exchanged.has(frame.collection)) await this.request(frame.collection)
      return
    }
    if (this.engine.host.hasCollection?.(frame.collection) === false && isEmptyUpdate(frame.payload)) {
      // The peer has nothing for a collection we do not have either: nothing to create.
      if (frame.step === SyncStep.STEP2 && this.awaiting.delete(frame.collection)) this.checkCaughtUp()
      return
    }
    if (frame.step !== SyncStep.STEP1 && this.engine.host.accepts?.(this.peerId, frame.collection) === false) {
      if (frame.step === SyncStep.STEP2 && this.awaiting.delete(frame.collection)) this.checkCaughtUp()
      return
    }
    if (frame.step !== SyncStep.STEP1 && this.engine.host.adopt !== undefined && this.engine.host.hasCollection?.(frame.collection) === false) {
      const adopted = await this.engine.host.adopt(frame.collection, frame.payload)
      if (adopted !== undefined) {
        this.engine.track(frame.collection, adopted)
        // No update event announced it: pass it on here, as the event would have.
        this.engine.forward(frame.collection, frame.payload, this)
        await this.applied(frame, true)
        return
      }
    }
    if (frame.step === SyncStep.STEP1 && isEmptyStateVector(frame.payload) && (await this.sendStored(frame.collection))) {
      if (!this.exchanged.has(frame.collection)) await this.request(frame.collection)
      return
    }
    const doc = this.engine.readyDoc(frame.collection) ?? (await this.engine.doc(frame.collection))
    if (this.closed) return
    if (frame.step === SyncStep.STEP1) {
      let diff: Uint8Array
      try {
        diff = Y.encodeStateAsUpdate(doc, frame.payload)
      } catch (err) {
        throw new KitsyncError('PROTOCOL_ERROR', `malformed state vector for ${frame.collection}`, { cause: err })
      }
      this.sendUpdate(frame.collection, SyncStep.STEP2, diff)
      if (!isEmptyUpdate(diff)) this.engine.stats.sent(this.peerId, frame.collection)
      if (!this.exchanged.has(frame.collection)) await this.request(frame.collection)
      return
    }
    let changed = false
    const onUpdate = (): void => {
      changed = true
    }
    doc.on('update', onUpdate)
    try {
      Y.applyUpdate(doc, frame.payload, this)
    } catch (err) {
      throw new KitsyncError('PROTOCOL_ERROR', `malformed update for ${frame.collection}`, { cause: err })
    } finally {
      doc.off('update', onUpdate)
    }
    await this.applied(frame, changed)
  }

  /**
   * Answer a peer that has nothing of a collection with the host's stored updates. The first
   * (the stored snapshot, usually all there is) goes as it is; any later ones, merged, follow
   * in the STEP2, so the peer has everything once the answer arrives. False: not available.
   */
  private async sendStored(collection: string): Promise<boolean> {
    const prefetched = this.prefetched.get(collection)
    this.prefetched.delete(collection)
    const stored = await (prefetched ?? this.engine.host.storedState?.(collection))
    if (stored === undefined || stored.length === 0 || this.closed) return false
    const [first, ...rest] = stored as [Uint8Array, ...Uint8Array[]]
    if (rest.length === 0) this.sendUpdate(collection, SyncStep.STEP2, first)
    else {
      this.sendUpdate(collection, SyncStep.UPDATE, first)
      this.sendUpdate(collection, SyncStep.STEP2, mergeInGroups(rest))
    }
    this.engine.stats.sent(this.peerId, collection)
    return true
  }

  /** After an update from the peer was merged: stats, events, and the catch-up state. */
  private async applied(frame: Extract<Frame, { type: 1 }>, changed: boolean): Promise<void> {
    this.stats.lastSyncAt = this.engine.now()
    if (changed) this.engine.stats.applied(this.peerId, frame.collection)
    this.engine.emit('update', { peerId: this.peerId, collection: frame.collection, bytes: frame.payload.byteLength })
    if (frame.step === SyncStep.STEP2 && this.awaiting.delete(frame.collection)) {
      // Caught up means stored, not just merged in memory (join reports it to the user).
      if (this.awaiting.size === 0) await this.engine.host.flushDoc?.(frame.collection)
      this.checkCaughtUp()
    }
  }

  private async hello(frame: Extract<Frame, { type: 0 }>): Promise<void> {
    if (this.ready) throw new KitsyncError('PROTOCOL_ERROR', 'second hello')
    if (frame.version !== SYNC_PROTOCOL_VERSION) {
      throw new KitsyncError('PROTOCOL_ERROR', `peer speaks sync protocol version ${frame.version}, this device ${SYNC_PROTOCOL_VERSION}`)
    }
    if (frame.workspaceId !== this.engine.host.workspaceId) {
      throw new KitsyncError('WORKSPACE_MISMATCH', `peer ${this.peerId} belongs to another workspace`)
    }
    for (const name of frame.collections) {
      if (!COLLECTION.test(name)) throw new KitsyncError('PROTOCOL_ERROR', `invalid collection name ${JSON.stringify(name)}`)
    }
    for (const name of frame.collections) this.peerNamed.add(name)
    this.ready = true
    for (const resolve of this.readyWaiters.splice(0)) resolve()
    this.engine.stats.session(this.peerId)
    this.awaiting = new Set(this.sharedNames(frame.collections))
    const names = new Set(this.sharedNames([...this.engine.host.collectionNames(), ...frame.collections]))
    this.prefetch([...names].filter((name) => !this.peerNamed.has(name)))
    this.engine.emit('connected', { peerId: this.peerId })
    // The catch-up is one round: progress events while it runs, one sync counted when it completes.
    const round = this.openRound(true)
    for (const name of [...names].sort()) {
      await this.request(name, round)
      if (this.closed) return
    }
    void this.closeRoundSetup(round)
    this.scheduleFlush()
    this.checkCaughtUp()
  }

  /**
   * Start reading the stored state of collections the peer does not have: it asks for each
   * of them with an empty state vector once it has our hello, and the reads (one LevelDB round
   * trip each, which would otherwise run one after the other as the requests are handled in
   * order) are then done or under way; for a device just admitted they were started at its
   * pairing (SyncEngine.expectNewDevice). Whatever the stored state misses by the time it is
   * sent, the session forwards as live updates, as for any answer.
   */
  private prefetch(names: string[]): void {
    const host = this.engine.host
    if (host.storedState === undefined) return
    const ahead = this.engine.takeReadAhead(this.peerId)
    for (const name of names) {
      if (host.hasCollection?.(name) === false) continue
      const p = ahead?.get(name) ?? host.storedState(name)
      p.catch(() => undefined)
      this.prefetched.set(name, p)
    }
  }

  /** Ask the peer for a collection: send our state vector (empty if we do not have it). */
  private async request(name: string, round?: Round): Promise<void> {
    let vector: Uint8Array = EMPTY_STATE_VECTOR
    if (this.engine.host.hasCollection?.(name) !== false) {
      const doc = await this.engine.doc(name)
      if (this.closed) return
      vector = Y.encodeStateVector(doc)
    }
    this.exchanged.add(name)
    const asked = (this.asked.get(name) ?? 0) + 1
    this.asked.set(name, asked)
    if (round !== undefined && !round.waiting.has(name)) {
      round.waiting.set(name, asked)
      round.total++
    }
    this.sendUpdate(name, SyncStep.STEP1, vector)
  }

  /**
   * A collection no longer exchanged (either side's selection narrowed) misses what is written
   * meanwhile: it counts as never asked for, so it is asked for again once it is exchanged again.
   */
  private forgetUnshared(): void {
    for (const name of this.exchanged) if (!this.shares(name)) this.exchanged.delete(name)
  }

  /** Ask for every collection shared on this session that was not exchanged yet. */
  private async requestNewlyShared(): Promise<void> {
    const names = this.sharedNames([...new Set([...this.engine.host.collectionNames(), ...this.peerNamed])]).filter((n) => !this.exchanged.has(n))
    for (const name of names.sort()) {
      if (this.closed) return
      await this.request(name)
    }
  }

  private openRound(progress: boolean): Round {
    const round: Round = { waiting: new Map(), total: 0, done: 0, bytesInAtStart: this.stats.bytesIn, progress, lastProgressAt: -Infinity, resolve: () => undefined }
    return round
  }

  /** Every request of the round is sent: wait for the answers (some may be in already). */
  private closeRoundSetup(round: Round): Promise<RoundResult> {
    return new Promise<RoundResult>((resolve) => {
      round.resolve = resolve
      if (this.closed) {
        resolve({ complete: false, collections: round.total, collectionsDone: round.done })
        return
      }
      // Answers may have arrived while requests were still being sent.
      for (const [name, needed] of round.waiting) {
        if ((this.answered.get(name) ?? 0) >= needed) {
          round.waiting.delete(name)
          round.done++
        }
      }
      this.rounds.add(round)
      this.emitProgress(round, true)
      this.finishRound(round)
    })
  }

  private answer(name: string): void {
    const answered = (this.answered.get(name) ?? 0) + 1
    this.answered.set(name, answered)
    this.engine.stats.collectionSynced(name)
    for (const round of this.rounds) {
      const needed = round.waiting.get(name)
      if (needed === undefined || answered < needed) continue
      round.waiting.delete(name)
      round.done++
      this.emitProgress(round, false)
      this.finishRound(round)
    }
  }

  private finishRound(round: Round): void {
    if (round.waiting.size > 0 || !this.rounds.has(round)) return
    this.rounds.delete(round)
    this.engine.stats.synced(this.peerId)
    round.resolve({ complete: true, collections: round.total, collectionsDone: round.done })
  }

  private emitProgress(round: Round, first: boolean): void {
    if (!round.progress || round.total === 0) return
    const now = this.engine.now()
    const last = round.done === round.total
    if (!first && !last && now - round.lastProgressAt < PROGRESS_INTERVAL_MS) return
    round.lastProgressAt = now
    this.engine.emit('progress', { peerId: this.peerId, collectionsDone: round.done, collectionsTotal: round.total, bytesIn: this.stats.bytesIn - round.bytesInAtStart })
  }

  private sharedNames(names: string[]): string[] {
    return names.filter((name) => this.shares(name))
  }

  private checkCaughtUp(): void {
    if (this.caughtUp || this.awaiting.size > 0) return
    this.caughtUp = true
    this.engine.emit('caught-up', { peerId: this.peerId })
  }

  /** Send our interest if it differs from the last one sent on this session. */
  private sendInterest(rules: InterestRule[]): void {
    const key = JSON.stringify(rules)
    if (key === this.interestSent) return
    this.interestSent = key
    this.send({ type: FrameType.INTEREST, rules })
  }

  private sendUpdate(collection: string, step: number, payload: Uint8Array): void {
    this.send({ type: FrameType.SYNC, collection, step, payload })
  }

  private send(frame: Frame): void {
    if (this.closed) return
    // A large payload goes behind its header uncopied; a small frame is one buffer (the link
    // copies small frames together anyway).
    const large = frame.type === FrameType.SYNC && frame.payload.byteLength >= LARGE_PAYLOAD_BYTES
    const parts = large ? encodeFrameParts(frame) : [encodeFrame(frame)]
    const bytes = parts.reduce((n, p) => n + p.byteLength, 0)
    if (bytes > this.engine.limits.maxFrameBytes) {
      this.close(new KitsyncError('PROTOCOL_ERROR', `a frame for ${'collection' in frame ? frame.collection : 'hello'} would be ${bytes} bytes, over the limit`))
      return
    }
    this.stats.bytesOut += bytes
    this.stats.framesOut++
    this.engine.stats.frameOut(this.peerId, bytes, frame.type === FrameType.SYNC ? frame.collection : undefined)
    this.link.send(large ? parts : (parts[0] as Uint8Array))
  }
}

/**
 * Y.mergeUpdates slows down sharply with the number of inputs (10,000 small updates: over a
 * second); merging in groups of 32, level by level, gives the same update in a tenth of that.
 */
/** From this many queued updates of one collection, a flush encodes the document's gain instead of merging them. */
export const DIFF_FROM_DOC_AT = 64

/** A SYNC payload of this size or more is handed to the link uncopied, as a part of its frame. */
const LARGE_PAYLOAD_BYTES = 64 * 1024

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
