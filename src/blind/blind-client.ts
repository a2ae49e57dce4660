import type * as Y from 'yjs'
import { TypedEmitter } from '../core/emitter.js'
import type { KitsyncError } from '../core/errors.js'
import type { PeerLink } from '../sync/sync-host.js'
import { SyncSession } from '../sync/sync-session.js'
import { BlindClientSession } from './blind-client-session.js'
import {
  DEFAULT_SNAPSHOT_POLICY,
  type BlindClientEvents,
  type BlindClientHost,
  type BlindSessionOwner,
  type SnapshotPolicy,
  type StoreRecord,
} from './client-types.js'

export { BlindClientSession } from './blind-client-session.js'

/** Units merged from peers are uploaded once such merges stop for this long (see BlindClient.unitChanged)... */
export const PEER_UNIT_DELAY_MS = 5000
/** ...or this long after the first of them. */
export const PEER_UNIT_MAX_DELAY_MS = 30_000
export { DEFAULT_SNAPSHOT_POLICY, type BlindClientEvents, type BlindClientHost, type SnapshotPolicy } from './client-types.js'

/**
 * A trusted device's side of the blind store (pure: the workspace and the transport plug in).
 *
 * Per store (one untrusted peer), the device keeps on its own (never synced): the store's id,
 * its cursor (the last seq it has applied), and per collection the state vector the store
 * holds as far as it knows (advanced by what it uploads and what it downloads). It uploads
 * `Y.encodeStateAsUpdate(doc, thatStateVector)`: what the store lacks, nothing more; live
 * changes are batched per tick. Downloads are decrypted, merged, made durable, and only then
 * does the cursor move. Once the store holds more than the thresholds since its last
 * snapshot (SnapshotPolicy, client-types.ts), a device that is caught up uploads a compacted
 * snapshot covering its cursor. Each session with a store is a BlindClientSession
 * (blind-client-session.ts); this class tracks the documents and batches their changes.
 */

export class BlindClient extends TypedEmitter<BlindClientEvents> implements BlindSessionOwner {
  private readonly docs = new Map<string, Y.Doc>()
  private readonly active = new Set<BlindClientSession>()
  /** Collections changed since the last flush, and whether a change was made here (not merged from a peer). */
  private readonly changed = new Map<string, boolean>()
  private flushScheduled = false
  /** Collections changed here while no store session was live (deletes leave no trace in a state vector). */
  private readonly offline = new Set<string>()
  /**
   * Units changed since the last flush, and folders whose blobs may be new. Nothing is kept while
   * no session is live: a session compares every unit's digest with what the store holds when it
   * goes live (blind-units.ts).
   */
  private changedUnits = new Map<string, Set<string>>()
  private blobFolders = new Set<string>()
  /** Units merged from a peer, uploaded after PEER_UNIT_DELAY_MS (see unitChanged). */
  private mergedUnits = new Map<string, Set<string>>()
  private mergedTimer: ReturnType<typeof setTimeout> | undefined
  private mergedSince: number | undefined

  constructor(
    readonly host: BlindClientHost,
    readonly options: {
      schedule?: (fn: () => void) => void
      policy?: SnapshotPolicy
      /** How long units merged from peers wait (default PEER_UNIT_DELAY_MS, PEER_UNIT_MAX_DELAY_MS). */
      peerUnitDelay?: { quietMs: number; maxMs: number }
    } = {},
  ) {
    super()
  }

  /** @internal Whether a collection goes to (and comes from) the store. */
  shares(name: string): boolean {
    return this.host.shares?.(name) ?? true
  }

  get policy(): SnapshotPolicy {
    return this.options.policy ?? DEFAULT_SNAPSHOT_POLICY
  }

  /**
   * Watch a collection's document for changes to upload. Idempotent. `adopted`: the document
   * was just created from a peer's copy, a change no update event announced.
   */
  track(name: string, doc: Y.Doc, adopted = false): void {
    if (this.docs.get(name) === doc) return
    this.docs.set(name, doc)
    // Dropped from memory while idle (the workspace loads it again on next use).
    doc.on('destroy', () => {
      if (this.docs.get(name) === doc) this.docs.delete(name)
    })
    if (adopted && this.shares(name)) {
      this.changed.set(name, this.changed.get(name) ?? false)
      this.scheduleFlush()
    }
    doc.on('update', (_update: Uint8Array, origin: unknown) => {
      if (origin instanceof BlindClientSession || !this.shares(name)) return
      const local = !(origin instanceof SyncSession)
      if (this.active.size === 0) {
        // No store session (no VPS peer, or none connected): what the flush would conclude,
        // without a flush per update on a device that has no store at all.
        if (local) this.offline.add(name)
        return
      }
      this.changed.set(name, (this.changed.get(name) ?? false) || local)
      this.scheduleFlush()
    })
  }

  /**
   * A unit changed (`local`: written here; else merged from a peer, not from a store): uploaded
   * to the live stores that lack it. A peer's change goes once peers' changes stop for
   * PEER_UNIT_DELAY_MS (PEER_UNIT_MAX_DELAY_MS at most), and only its structs the store lacks: its author uploads it too, and its entry, come from the store
   * meanwhile, tells that the store has it (without the wait, a device that got a folder's 1,000
   * files from a peer uploaded each again in an entry of its own). What the store still lacks of
   * a deletion merged from a peer goes up at the next session's start (digests, blind-units.ts).
   */
  unitChanged(collection: string, unit: string, local = true): void {
    if (this.active.size === 0) return
    const map = local ? this.changedUnits : this.mergedUnits
    let set = map.get(collection)
    if (set === undefined) map.set(collection, (set = new Set()))
    set.add(unit)
    if (local) {
      this.scheduleFlush()
      return
    }
    // Once peers' changes stop for PEER_UNIT_DELAY_MS, at most PEER_UNIT_MAX_DELAY_MS after the first.
    const delay = this.options.peerUnitDelay ?? { quietMs: PEER_UNIT_DELAY_MS, maxMs: PEER_UNIT_MAX_DELAY_MS }
    const now = Date.now()
    this.mergedSince ??= now
    clearTimeout(this.mergedTimer)
    this.mergedTimer = setTimeout(
      () => {
        this.mergedTimer = undefined
        this.mergedSince = undefined
        const merged = this.mergedUnits
        this.mergedUnits = new Map()
        for (const s of this.active) s.noteUnits(merged, [], true)
      },
      Math.max(0, Math.min(delay.quietMs, this.mergedSince + delay.maxMs - now)),
    )
    ;(this.mergedTimer as { unref?: () => void }).unref?.()
  }

  /** A blob arrived or was written here: the live stores get it if a shared folder names it. */
  blobsChanged(): void {
    if (this.active.size === 0) return
    for (const c of this.host.units?.collections() ?? []) this.blobFolders.add(c)
    this.scheduleFlush()
  }

  async doc(name: string): Promise<Y.Doc> {
    const doc = await this.host.openDoc(name)
    this.track(name, doc)
    return doc
  }

  /** Start a session with a store over a new link; it says hello at once. */
  async attach(link: PeerLink): Promise<BlindClientSession> {
    const record = await this.load(link.peerId)
    record.dirty = [...new Set([...record.dirty, ...this.offline])]
    this.offline.clear()
    const session = new BlindClientSession(this, link, record)
    this.active.add(session)
    session.start()
    return session
  }

  sessions(): BlindClientSession[] {
    return [...this.active]
  }

  /** Whether changes are waiting to go to this session's store (not yet acknowledged). */
  pending(session: BlindClientSession): boolean {
    return this.flushScheduled || this.changed.size > 0 || this.changedUnits.size > 0 || this.mergedUnits.size > 0 || session.unacknowledged
  }

  /** Close every session; resolves once each one's cursor and state vectors are saved. */
  async closeAll(): Promise<void> {
    const sessions = [...this.active]
    clearTimeout(this.mergedTimer)
    this.mergedTimer = undefined
    this.mergedSince = undefined
    for (const s of sessions) s.close()
    // A failed save was logged by its session; closing goes on, and the next session starts
    // from the cursor last saved.
    await Promise.all(sessions.map((s) => s.saved.catch(() => undefined))) // each failure was logged by its session
  }

  /** @internal */
  removed(session: BlindClientSession, error?: KitsyncError): void {
    if (this.active.delete(session)) this.emit('closed', error === undefined ? { peerId: session.peerId } : { peerId: session.peerId, error })
  }

  /** @internal */
  async load(peerId: string): Promise<StoreRecord> {
    const raw = (await this.host.getLocal(`blind:${peerId}`)) as Partial<StoreRecord> | undefined
    return {
      storeId: typeof raw?.storeId === 'string' ? raw.storeId : '',
      cursor: typeof raw?.cursor === 'number' ? raw.cursor : 0,
      sv: typeof raw?.sv === 'object' && raw.sv !== null ? raw.sv : {},
      dirty: Array.isArray(raw?.dirty) ? raw.dirty.filter((d): d is string => typeof d === 'string') : [],
      ...(raw?.partial === true ? { partial: true } : {}),
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    ;(this.options.schedule ?? queueMicrotask)(() => {
      this.flushScheduled = false
      const changed = new Map(this.changed)
      this.changed.clear()
      if (![...this.active].some((s) => s.live)) for (const [name, local] of changed) if (local) this.offline.add(name)
      for (const s of this.active) s.noteChanges(changed)
      const [units, blobs] = [this.changedUnits, this.blobFolders]
      this.changedUnits = new Map()
      this.blobFolders = new Set()
      if (units.size > 0 || blobs.size > 0) for (const s of this.active) s.noteUnits(units, blobs)
    })
  }
}
