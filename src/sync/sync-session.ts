import * as Y from 'yjs'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import type { InterestRule } from '../core/selection.js'
import { decodeFrame, encodeFrame, encodeFrameParts, FrameType, SYNC_PROTOCOL_VERSION, SyncStep, type Frame } from '../protocol/sync-frames.js'
import { ExchangeRounds, type Round, type RoundResult } from './exchange-rounds.js'
import { SessionInterest } from './session-interest.js'
import { StoredStateReads, storedAnswer } from './stored-state.js'
import type { SyncEvents } from './sync-events.js'
import type { PeerLink, SyncHost } from './sync-host.js'
import type { SyncLimits } from './sync-limits.js'
import type { SyncStats } from './sync-stats.js'
import type { PendingLedger } from './pending-ledger.js'
import { UpdateOutbox } from './update-outbox.js'
import { applyPeerUpdate } from './update-relay.js'
import { isUnitFrame } from '../protocol/unit-frames.js'
import { UnitExchange, type UnitRelay } from './unit-exchange.js'
import { isHistoryFrame, type HistoryOwner } from './history-exchange.js'

/**
 * One session with a peer over one link: the hello, then per collection the y-protocols
 * exchange (state vector -> missing updates), then live updates both ways. Updates from the
 * peer are applied with the session as origin, so the engine never sends them back to it.
 */

/** What a session needs from its owner (the SyncEngine): the host, the shared documents and counters, and where to report. */
export interface SessionOwner extends UnitRelay, HistoryOwner {
  readonly host: SyncHost
  readonly limits: SyncLimits
  readonly now: () => number
  /** How a flush of merged updates is scheduled. */
  readonly schedule: (fn: () => void) => void
  readonly stats: SyncStats
  readonly ledger: PendingLedger
  readonly totals: { framesIn: number }
  emit<K extends keyof SyncEvents>(event: K, payload: SyncEvents[K]): void
  /** Whether this device syncs a collection with a peer (the host's rule). */
  shares(peerId: string, collection: string): boolean
  /** Take one frame's token from the peer's rate budget; false: over it. */
  takeFrameToken(peerId: string): boolean
  /** The stored states read for a device just admitted, handed out once. */
  takeReadAhead(peerId: string): Map<string, Promise<Uint8Array[] | undefined>> | undefined
  /** Forward a document's updates to peers (the session created it by adopting). */
  track(name: string, doc: Y.Doc): void
  /** Queue an update for every session but `from` that exchanges the collection. */
  forward(name: string, update: Uint8Array, from: SyncSession): void
  /** How to send a peer's update on to every session but `from` that exchanges the collection (update-relay.ts); undefined: there is none. */
  relayer(name: string, from: SyncSession): ((update: Uint8Array) => void) | undefined
  /** The document of a tracked collection, if loaded. */
  loadedDoc(name: string): Y.Doc | undefined
  /** The host's document of a collection if it is loaded now (tracked), else undefined. */
  readyDoc(name: string): Y.Doc | undefined
  /** The document of a collection, loaded or created, and tracked. */
  doc(name: string): Promise<Y.Doc>
  /** The session ended. */
  removed(session: SyncSession, error: KitsyncError | undefined): void
}

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

/** A Yjs update that holds nothing: no structs, empty delete set. */
const EMPTY_UPDATE = new Uint8Array([0, 0])
const EMPTY_STATE_VECTOR = new Uint8Array([0])

/** A SYNC payload of this size or more is handed to the link uncopied, as a part of its frame. */
const LARGE_PAYLOAD_BYTES = 64 * 1024

/** A state vector with no clients: the peer has nothing of the collection. */
function isEmptyStateVector(vector: Uint8Array): boolean {
  return vector.byteLength === 1 && vector[0] === 0
}

function isEmptyUpdate(update: Uint8Array): boolean {
  return update.byteLength === 2 && update[0] === 0 && update[1] === 0
}

export class SyncSession {
  readonly peerId: string
  private readonly owner: SessionOwner
  private readonly link: PeerLink
  private ready = false
  private closed = false
  private awaiting = new Set<string>()
  private caughtUp = false
  private inbox: Promise<void> = Promise.resolve()
  /** Frames received and not yet handled to the end (the one in hand included). */
  private handling = 0
  private readonly stats = { connectedAt: 0, bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0, lastSyncAt: undefined as number | undefined }
  private readonly interest: SessionInterest
  private readonly rounds: ExchangeRounds
  private readonly outbox: UpdateOutbox
  private readonly readyWaiters: (() => void)[] = []
  /** Stored states being read for collections the peer's hello showed it lacks (it asks for them next). */
  private readonly storedReads: StoredStateReads
  readonly units: UnitExchange // units and blobs (unit-exchange.ts)

  constructor(owner: SessionOwner, link: PeerLink) {
    this.owner = owner
    this.link = link
    this.peerId = link.peerId
    this.stats.connectedAt = owner.now()
    this.interest = new SessionInterest((collection) => owner.shares(this.peerId, collection))
    this.rounds = new ExchangeRounds({
      now: () => owner.now(),
      bytesIn: () => this.stats.bytesIn,
      isClosed: () => this.closed,
      progress: (p, collection) =>
        owner.emit('progress', {
          peerId: this.peerId,
          device: this.peerId,
          ...(collection === undefined ? {} : { collection }),
          done: p.collectionsDone,
          total: p.collectionsTotal,
          bytes: p.bytesIn,
          ...p,
        }),
      completed: (ms) => owner.stats.synced(this.peerId, ms),
    })
    this.outbox = new UpdateOutbox({
      maxBufferedBytes: owner.limits.maxBufferedBytes,
      schedule: (fn) => owner.schedule(fn),
      bufferedBytes: () => this.link.bufferedBytes,
      isReady: () => this.ready,
      isClosed: () => this.closed,
      shares: (collection) => this.shares(collection),
      loadedDoc: (collection) => owner.loadedDoc(collection),
      send: (collection, payload) => {
        this.sendUpdate(collection, SyncStep.UPDATE, payload)
        owner.stats.sent(this.peerId, collection)
      },
      overflow: () => this.close(new KitsyncError('RATE_LIMITED', `peer ${this.peerId} does not keep up: over ${owner.limits.maxBufferedBytes} unsent bytes`)),
      flushed: () => {
        this.stats.lastSyncAt = owner.now()
      },
    })
    this.storedReads = new StoredStateReads(owner.host)
    this.units = new UnitExchange(owner, link, this, this.stats)
  }

  start(): void {
    // The interest goes first, so the peer knows what to send before it answers the hello.
    const rules = this.owner.host.interest?.()
    if (rules !== undefined) this.sendInterest(rules)
    this.send({
      type: FrameType.HELLO,
      version: SYNC_PROTOCOL_VERSION,
      workspaceId: this.owner.host.workspaceId,
      collections: this.interest.sharedNames(this.owner.host.collectionNames()),
    })
  }

  /** Whether a collection is exchanged on this session: this device syncs it, and the peer's interest wants it. */
  shares(collection: string): boolean {
    return this.interest.shares(collection)
  }

  /** Feed one frame received from the peer. Frames are handled strictly in order. */
  receive(bytes: Uint8Array): void {
    if (this.closed) return
    this.stats.bytesIn += bytes.byteLength
    this.stats.framesIn++
    this.owner.totals.framesIn++
    this.owner.stats.frameIn(this.peerId, bytes.byteLength)
    if (!this.owner.takeFrameToken(this.peerId)) {
      this.close(new KitsyncError('RATE_LIMITED', `peer ${this.peerId} sent more than ${this.owner.limits.framesPerSecond} frames per second`))
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
    return { peerId: this.peerId, ready: this.ready, caughtUp: this.caughtUp, ...this.stats, unsentBytes: this.outbox.bytes + this.link.bufferedBytes }
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
    const names = collections === undefined ? this.interest.allShared(this.owner.host.collectionNames()) : [...collections]
    const round = this.rounds.open(options.progress ?? false)
    for (const name of [...new Set(names)].sort()) {
      if (this.closed) break
      await this.request(name, round)
    }
    await this.units.start(names, true)
    return this.rounds.settle(round)
  }

  /** @internal The host's selection changed (see SyncEngine.refreshInterest). */
  async interestChanged(): Promise<void> {
    if (this.closed) return
    const rules = this.owner.host.interest?.()
    if (rules !== undefined) this.sendInterest(rules)
    if (!this.ready) return
    this.interest.forgetUnshared()
    await this.requestNewlyShared()
  }

  /** End the session; with an error, the peer is told the reason first. */
  close(error?: KitsyncError): void {
    if (this.closed) return
    this.closed = true
    this.outbox.clear()
    this.units.clear()
    this.storedReads.clear()
    this.link.close(error)
    this.rounds.abort()
    for (const resolve of this.readyWaiters.splice(0)) resolve()
    this.owner.removed(this, error)
  }

  /** @internal Queue a local (or relayed) update for this peer; merged and sent on the next tick. */
  enqueue(collection: string, update: Uint8Array, before?: Map<number, number>): void {
    this.outbox.enqueue(collection, update, before)
  }

  /** @internal Send a peer's update on at once unless updates of the collection are queued (then it joins them). */
  readonly relay = (collection: string, update: Uint8Array): void => this.outbox.relay(collection, update)

  private async handle(bytes: Uint8Array): Promise<void> {
    if (this.closed) return
    if (bytes.byteLength > this.owner.limits.maxFrameBytes) {
      throw new KitsyncError('PROTOCOL_ERROR', `frame of ${bytes.byteLength} bytes is over the limit of ${this.owner.limits.maxFrameBytes}`)
    }
    if (isUnitFrame(bytes)) return this.units.receive(bytes)
    if (isHistoryFrame(bytes)) return this.owner.historyFrame(this, bytes)
    const frame = decodeFrame(bytes)
    if (frame.type === FrameType.ERROR) {
      this.close()
      return
    }
    if (frame.type === FrameType.REVOKED) {
      // The peer says this device was revoked: the owner checks the signature and decides.
      this.owner.emit('revoked', { peerId: this.peerId, notice: frame })
      this.close()
      return
    }
    if (frame.type === FrameType.HELLO) {
      await this.hello(frame)
      return
    }
    if (frame.type === FrameType.INTEREST) {
      this.interest.peerWants(frame.rules)
      // Before the hello nothing was exchanged yet; the hello takes the interest into account.
      if (!this.ready) return
      this.interest.forgetUnshared()
      await this.requestNewlyShared().then(() => this.units.reshared(this.interest.allShared(this.owner.host.collectionNames())))
      return
    }
    if (!this.ready) throw new KitsyncError('PROTOCOL_ERROR', 'sync frame before hello')
    if (!COLLECTION.test(frame.collection)) throw new KitsyncError('PROTOCOL_ERROR', `invalid collection name ${JSON.stringify(frame.collection)}`)
    this.owner.stats.collectionIn(frame.collection, bytes.byteLength)
    if (frame.step === SyncStep.STEP1) {
      this.interest.peerNamed.add(frame.collection)
      if (this.shares(frame.collection)) this.peerReported(frame.collection, frame.payload)
    }
    try {
      await this.sync(frame)
    } finally {
      if (frame.step === SyncStep.STEP2) {
        this.owner.stats.collectionSynced(frame.collection)
        this.rounds.answer(frame.collection)
      }
    }
  }

  private async sync(frame: Extract<Frame, { type: 1 }>): Promise<void> {
    if (!this.shares(frame.collection)) {
      // Not exchanged with this peer: answer a request as if we had nothing, drop any data.
      if (frame.step === SyncStep.STEP1) {
        Y.decodeStateVector(frame.payload)
        this.sendUpdate(frame.collection, SyncStep.STEP2, EMPTY_UPDATE)
      } else if (!isEmptyUpdate(frame.payload)) {
        this.owner.stats.dropped(this.peerId, frame.collection)
      }
      return
    }
    if (frame.step === SyncStep.STEP1 && this.owner.host.hasCollection?.(frame.collection) === false) {
      // Nothing here: say so without creating (and holding in memory) an empty collection.
      Y.decodeStateVector(frame.payload)
      this.sendUpdate(frame.collection, SyncStep.STEP2, EMPTY_UPDATE)
      // The peer has it and we sync it but never asked (it was newly wanted): ask now.
      if (!this.interest.exchanged.has(frame.collection)) await this.request(frame.collection)
      return
    }
    if (this.owner.host.hasCollection?.(frame.collection) === false && isEmptyUpdate(frame.payload)) {
      // The peer has nothing for a collection we do not have either: nothing to create.
      if (frame.step === SyncStep.STEP2 && this.awaiting.delete(frame.collection)) this.checkCaughtUp()
      return
    }
    if (frame.step !== SyncStep.STEP1 && this.owner.host.accepts?.(this.peerId, frame.collection) === false) {
      if (frame.step === SyncStep.STEP2 && this.awaiting.delete(frame.collection)) this.checkCaughtUp()
      return
    }
    if (frame.step !== SyncStep.STEP1 && this.owner.host.adopt !== undefined && this.owner.host.hasCollection?.(frame.collection) === false) {
      const adopted = await this.owner.host.adopt(frame.collection, frame.payload)
      if (adopted !== undefined) {
        this.owner.track(frame.collection, adopted)
        // No update event announced it: pass it on here, as the event would have.
        this.owner.forward(frame.collection, frame.payload, this)
        await this.applied(frame, true)
        return
      }
    }
    if (frame.step === SyncStep.STEP1 && isEmptyStateVector(frame.payload) && (await this.sendStored(frame.collection))) {
      if (!this.interest.exchanged.has(frame.collection)) await this.request(frame.collection)
      return
    }
    // Nothing to apply (the answer of a peer that lacks the collection): not worth loading the document for.
    if (frame.step !== SyncStep.STEP1 && isEmptyUpdate(frame.payload) && this.owner.loadedDoc(frame.collection) === undefined) return this.applied(frame, false)
    const doc = this.owner.readyDoc(frame.collection) ?? (await this.owner.doc(frame.collection))
    if (this.closed) return
    if (frame.step === SyncStep.STEP1) {
      let diff: Uint8Array
      try {
        diff = Y.encodeStateAsUpdate(doc, frame.payload)
      } catch (err) {
        throw new KitsyncError('PROTOCOL_ERROR', `malformed state vector for ${frame.collection}`, { cause: err })
      }
      this.sendUpdate(frame.collection, SyncStep.STEP2, diff)
      if (!isEmptyUpdate(diff)) this.owner.stats.sent(this.peerId, frame.collection)
      if (!this.interest.exchanged.has(frame.collection)) await this.request(frame.collection)
      return
    }
    await this.applied(frame, applyPeerUpdate(doc, frame.collection, frame.payload, this, this.owner.relayer(frame.collection, this)))
  }

  /** Answer a peer that has nothing of a collection with the host's stored updates (see storedAnswer). False: not available. */
  private async sendStored(collection: string): Promise<boolean> {
    const stored = await this.storedReads.take(collection)
    if (stored === undefined || stored.length === 0 || this.closed) return false
    for (const { step, payload } of storedAnswer(stored as [Uint8Array, ...Uint8Array[]])) this.sendUpdate(collection, step, payload)
    this.owner.stats.sent(this.peerId, collection)
    return true
  }

  /** After an update from the peer was merged: stats, events, and the catch-up state. */
  private async applied(frame: Extract<Frame, { type: 1 }>, changed: boolean): Promise<void> {
    this.stats.lastSyncAt = this.owner.now()
    if (changed) this.owner.stats.applied(this.peerId, frame.collection)
    this.owner.emit('update', { peerId: this.peerId, collection: frame.collection, bytes: frame.payload.byteLength })
    if (frame.step === SyncStep.STEP2 && this.awaiting.delete(frame.collection)) {
      // Caught up means stored, not just merged in memory (join reports it to the user).
      if (this.awaiting.size === 0) await this.owner.host.flushDoc?.(frame.collection)
      this.checkCaughtUp()
    }
  }

  private async hello(frame: Extract<Frame, { type: 0 }>): Promise<void> {
    if (this.ready) throw new KitsyncError('PROTOCOL_ERROR', 'second hello')
    if (frame.version !== SYNC_PROTOCOL_VERSION) {
      throw new KitsyncError('VERSION_MISMATCH', `peer speaks sync protocol version ${frame.version}, this device ${SYNC_PROTOCOL_VERSION}`)
    }
    if (frame.workspaceId !== this.owner.host.workspaceId) {
      throw new KitsyncError('WORKSPACE_MISMATCH', `peer ${this.peerId} belongs to another workspace`)
    }
    for (const name of frame.collections) {
      if (!COLLECTION.test(name)) throw new KitsyncError('PROTOCOL_ERROR', `invalid collection name ${JSON.stringify(name)}`)
    }
    for (const name of frame.collections) this.interest.peerNamed.add(name)
    this.ready = true
    for (const resolve of this.readyWaiters.splice(0)) resolve()
    this.owner.stats.session(this.peerId)
    this.awaiting = new Set(this.interest.sharedNames(frame.collections))
    const names = new Set(this.interest.sharedNames([...this.owner.host.collectionNames(), ...frame.collections]))
    // Read ahead the stored state of collections the peer lacks: it asks for each with an empty state vector.
    this.storedReads.start(
      [...names].filter((name) => !this.interest.peerNamed.has(name)),
      () => this.owner.takeReadAhead(this.peerId),
    )
    this.owner.emit('connected', { peerId: this.peerId })
    // The catch-up is one round: progress events while it runs, one sync counted when it completes.
    const round = this.rounds.open(true)
    for (const name of [...names].sort()) {
      await this.request(name, round)
      if (this.closed) return
    }
    void this.rounds.settle(round)
    this.outbox.scheduleFlush()
    this.checkCaughtUp()
    // Not awaited: the peer's catch-up answers do not wait for the units' digests.
    this.units.start(names).catch((err: unknown) => this.close(toKitsyncError(err)))
  }

  /** Ask the peer for a collection: our state vector, empty if we or the peer lack it (its answer is the same; no load of a big document first). */
  private async request(name: string, round?: Round): Promise<void> {
    let vector: Uint8Array = EMPTY_STATE_VECTOR
    if (this.owner.host.hasCollection?.(name) !== false && this.interest.peerNamed.has(name)) {
      const doc = await this.owner.doc(name)
      if (this.closed) return
      vector = Y.encodeStateVector(doc)
    }
    this.interest.exchanged.add(name)
    this.rounds.requested(name, round)
    this.sendUpdate(name, SyncStep.STEP1, vector)
  }

  /** Ask for every collection shared on this session that was not exchanged yet. */
  private async requestNewlyShared(): Promise<void> {
    const names = this.interest.allShared(this.owner.host.collectionNames()).filter((n) => !this.interest.exchanged.has(n))
    for (const name of names.sort()) {
      if (this.closed) return
      await this.request(name)
    }
  }

  private checkCaughtUp(): void {
    if (this.caughtUp || this.awaiting.size > 0) return
    this.caughtUp = true
    this.owner.emit('caught-up', { peerId: this.peerId })
  }

  /** Send our interest if it differs from the last one sent on this session. */
  private sendInterest(rules: InterestRule[]): void {
    if (this.interest.changed(rules)) this.send({ type: FrameType.INTEREST, rules })
  }

  private sendUpdate(collection: string, step: number, payload: Uint8Array): void {
    this.send({ type: FrameType.SYNC, collection, step, payload })
    if (step !== SyncStep.STEP1 && !this.closed && this.owner.ledger.hasOwn(collection)) this.owner.ledger.delivered(this.peerId, collection, payload)
  }

  /** The peer's state vector for a collection: what it holds of this device's writes (a malformed one is refused when handled). */
  private peerReported(collection: string, vector: Uint8Array): void {
    if (!this.owner.ledger.hasOwn(collection)) return
    try {
      this.owner.ledger.reported(this.peerId, collection, Y.decodeStateVector(vector))
    } catch {
      // handled (refused) by sync()
    }
  }

  private send(frame: Frame): void {
    if (this.closed) return
    // A large payload goes behind its header uncopied; a small frame is one buffer (the link
    // copies small frames together anyway).
    const large = frame.type === FrameType.SYNC && frame.payload.byteLength >= LARGE_PAYLOAD_BYTES
    const parts = large ? encodeFrameParts(frame) : [encodeFrame(frame)]
    const bytes = parts.reduce((n, p) => n + p.byteLength, 0)
    if (bytes > this.owner.limits.maxFrameBytes) {
      this.close(
        new KitsyncError('PROTOCOL_ERROR', `a frame for ${'collection' in frame ? frame.collection : 'hello'} would be ${bytes} bytes, over the limit`),
      )
      return
    }
    this.stats.bytesOut += bytes
    this.stats.framesOut++
    this.owner.stats.frameOut(this.peerId, bytes, frame.type === FrameType.SYNC ? frame.collection : undefined)
    this.link.send(large ? parts : (parts[0] as Uint8Array))
  }
}
