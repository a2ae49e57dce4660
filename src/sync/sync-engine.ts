import type * as Y from 'yjs'
import { TypedEmitter } from '../core/emitter.js'
import { toKitsyncError, type KitsyncError } from '../core/errors.js'
import { ReadAhead } from './stored-state.js'
import type { PeerLink, SyncHost } from './sync-host.js'
import { DEFAULT_SYNC_LIMITS, FrameBudget, type SyncLimits } from './sync-limits.js'
import type { SyncEvents } from './sync-events.js'
import { SyncSession, type SessionOwner } from './sync-session.js'
import { SyncStats } from './sync-stats.js'
import { PendingLedger } from './pending-ledger.js'
import { BlobFetches } from './blob-fetches.js'
import type { UnitExchange } from './unit-exchange.js'
import { wasPassedOn } from './update-relay.js'
import { HistoryExchange, type HistoryOwner, type HistoryRelay, type HistorySession } from './history-exchange.js'
import type { HistorySyncHost } from './history-host.js'

/**
 * The sync engine of one device: pure, no I/O. It keeps one session per connected peer and,
 * per collection, runs the y-protocols exchange (state vector -> missing updates), then
 * forwards live updates to every other session, merged per tick. An update is never sent
 * back to the session it came from (it is applied with that session as origin), and Yjs
 * emits nothing for an update it already has, so loops in the mesh die out by themselves.
 * Transports (libp2p, or an in-memory pair in tests) plug in as PeerLinks (sync-host.ts).
 *
 * What one session does is in sync-session.ts, with its parts beside it: exchange-rounds.ts
 * (when an exchange is complete), session-interest.ts (which collections a session
 * exchanges), update-outbox.ts (live updates merged per tick) and stored-state.ts (answering
 * a peer that has nothing from the stored updates, read ahead for a device just admitted).
 */

export interface SyncEngineOptions {
  limits?: Partial<SyncLimits>
  /** How a flush of merged updates is scheduled (setImmediate in Node; a microtask by default). */
  schedule?: (fn: () => void) => void
  now?: () => number
  /** The history entries of the workspace (optional): reconciled on the sessions (sync/history-exchange.ts). */
  history?: HistorySyncHost
}

export class SyncEngine extends TypedEmitter<SyncEvents> implements SessionOwner, HistoryOwner {
  readonly host: SyncHost
  readonly limits: SyncLimits
  readonly schedule: (fn: () => void) => void
  readonly now: () => number
  private readonly docs = new Map<string, Y.Doc>()
  private readonly active = new Set<SyncSession>()
  private readonly frameBudget: FrameBudget
  private readonly readAhead = new ReadAhead()
  /** Totals over all sessions, for status and tests. */
  readonly totals = { framesIn: 0, sessionsFailed: 0 }
  /** Counters per peer and per collection (kitsync stats). */
  readonly stats: SyncStats
  /** What each device is known to hold of this device's writes (the pending count of status). */
  readonly ledger = new PendingLedger()
  private readonly blobs: BlobFetches
  /** The history exchange of each session. */
  private readonly histories = new Map<HistorySession, HistoryExchange>()
  private readonly historyRelay: HistoryRelay

  constructor(host: SyncHost, options: SyncEngineOptions = {}) {
    super()
    this.host = host
    this.limits = { ...DEFAULT_SYNC_LIMITS, ...options.limits }
    this.schedule = options.schedule ?? queueMicrotask
    this.now = options.now ?? Date.now
    this.stats = new SyncStats(this.now)
    this.frameBudget = new FrameBudget(this.limits, this.now)
    this.historyRelay = {
      history: options.history,
      accepts: (peerId, collection) => host.accepts?.(peerId, collection) !== false,
      frameOut: (peerId, bytes, collection) => this.stats.frameOut(peerId, bytes, collection),
      stored: (peerId, collection, count) => this.emit('history-stored', { peerId, collection, count }),
    }
    // A peer's first update of a collection on a session (its catch-up answer) opens the history's reconciliation.
    this.on('update', ({ peerId, collection }) => {
      for (const session of this.sessionsWith(peerId)) {
        if (session.isReady)
          void this.histories
            .get(session)
            ?.begin(collection)
            .catch((err: unknown) => session.close(toKitsyncError(err)))
      }
    })
    const units = host.units
    this.blobs = new BlobFetches((hash, bytes) => units?.storeBlob(hash, bytes) ?? Promise.resolve())
    units?.connect({
      forward: (collection, unit, update) => this.forwardUnit(collection, unit, update, undefined),
      fetchBlob: (hash, signal) => this.fetchBlob(hash, signal),
    })
  }

  /** Queue a unit's update for every session but `from` that exchanges its collection. */
  forwardUnit(collection: string, unit: string, update: Uint8Array, from: UnitExchange | undefined): void {
    for (const session of this.active) if (session.units !== from && session.shares(collection)) session.units.enqueue(collection, unit, update)
  }

  /** Ask every connected peer that exchanges blobs for one (see BlobFetches). */
  fetchBlob(hash: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    const sessions = [...this.active].filter((s) => s.isReady && !s.isClosed && this.host.units?.exchangesBlobs(s.peerId) === true)
    return this.blobs.fetch(
      hash,
      sessions.map((s) => ({ peerId: s.peerId, ask: () => s.units.wantBlob(hash) })),
      signal,
    )
  }

  /** @internal A history frame from a session's peer. */
  historyFrame(session: HistorySession, bytes: Uint8Array): Promise<void> {
    return this.histories.get(session)?.receive(bytes) ?? Promise.resolve()
  }

  /** The history exchange of a session (its counters). */
  historyOf(session: HistorySession): HistoryExchange | undefined {
    return this.histories.get(session)
  }

  /** @internal A peer answered a BLOB_WANT. */
  blobAnswer(hash: string, bytes: Uint8Array | undefined, peerId: string): void {
    this.blobs.answer(hash, bytes, peerId)
  }

  /** Start a session over a new link; it says hello at once. */
  attach(link: PeerLink): SyncSession {
    const session = new SyncSession(this, link)
    this.active.add(session)
    this.histories.set(session, new HistoryExchange(this.historyRelay, link, session, this.now))
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
    // Dropped from memory while idle (daemon/idle-docs.ts): the next use loads it again.
    doc.on('destroy', () => {
      if (this.docs.get(name) === doc) this.docs.delete(name)
    })
    doc.on('update', (update: Uint8Array, origin: unknown, _doc: Y.Doc, tr: Y.Transaction) => {
      // A read started before this update does not hold it, and the device has no session yet to send it on.
      this.readAhead.changed(name)
      // A write made here (a document's load applies others' updates, not its own client's).
      if (tr.local) {
        const clock = tr.afterState.get(doc.clientID) ?? 0
        if (clock > (tr.beforeState.get(doc.clientID) ?? 0)) this.ledger.localWrite(name, doc.clientID, clock)
      }
      // A peer's update passed on before its observers ran (update-relay.ts) is not queued again.
      if (wasPassedOn(tr)) return
      for (const session of this.active) if (session !== origin && session.shares(name)) session.enqueue(name, update, tr.beforeState)
    })
  }

  /** Queue an update for every session but `from` that exchanges the collection. */
  forward(name: string, update: Uint8Array, from: SyncSession | undefined): void {
    for (const session of this.active) if (session !== from && session.shares(name)) session.enqueue(name, update)
  }

  /** How to send a peer's update on to every session but `from` that exchanges the collection (see UpdateOutbox.relay); undefined: there is none. */
  relayer(name: string, from: SyncSession): ((update: Uint8Array) => void) | undefined {
    const to = [...this.active].filter((session) => session !== from && session.shares(name))
    if (to.length === 0) return undefined
    return (update) => {
      for (const session of to) session.relay(name, update)
    }
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
   * is kept for READ_AHEAD_MS (stored-state.ts), and dropped if the collection changes
   * meanwhile (a write made before the session existed would not reach the device otherwise):
   * the session reads again.
   */
  expectNewDevice(peerId: string): void {
    const host = this.host
    const storedState = host.storedState
    if (storedState === undefined) return
    const names = [...this.docs.keys()].filter((name) => this.shares(peerId, name))
    this.readAhead.start(peerId, names, (name) => storedState.call(host, name))
  }

  /** @internal The stored states read ahead for this device (of the collections unchanged since), handed out once. */
  takeReadAhead(peerId: string): Map<string, Promise<Uint8Array[] | undefined>> | undefined {
    return this.readAhead.take(peerId)
  }

  /** Whether a collection is exchanged with a peer (see SyncHost.shares). */
  shares(peerId: string, collection: string): boolean {
    return this.host.shares?.(peerId, collection) ?? true
  }

  /** @internal Take one frame's token from the peer's budget (see FrameBudget). */
  takeFrameToken(peerId: string): boolean {
    return this.frameBudget.take(peerId)
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
    this.histories.delete(session)
    if (this.sessionsWith(session.peerId).length === 0) this.blobs.gone(undefined, session.peerId)
    if (error !== undefined) this.totals.sessionsFailed++
    this.emit('offline', error === undefined ? { peerId: session.peerId } : { peerId: session.peerId, error })
  }
}
