import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { abortable, throwIfAborted } from '../core/abort.js'
import type { TypedEmitter } from '../core/emitter.js'
import { KitsyncError } from '../core/errors.js'
import { logger } from '@libp2p/logger'
import { SYNC_PROTOCOL_ID } from '../protocol/sync-frames.js'
import type { SyncEngine } from '../sync/sync-engine.js'
import type { SessionStats, SyncSession } from '../sync/sync-session.js'
import { BackoffScheduler, type MeshClock } from './backoff.js'
import { dialSignal } from './dial-signal.js'
import type { KnownPeer } from './peer-book.js'
import { StreamLink } from './stream-link.js'
import { syncDialError } from './sync-version.js'

const log = logger('kitsync:sync-sessions')

export interface MeshEvents {
  connected: { peerId: string }
  offline: { peerId: string; reason?: { code: string; message: string } }
  /** A sync stream refused; `address` is the connection's remote multiaddr. */
  refused: { peerId: string; reason: string; address: string }
}

/** How long a refused device gets to read its REVOKED notice before the stream is reset. */
const NOTICE_TIMEOUT_MS = 5000

/** What the sync sessions need of the mesh. */
export interface SyncSessionsComponents {
  node: Pick<Libp2p, 'dialProtocol' | 'getConnections'>
  engine: SyncEngine
  /** This device's peer id. */
  self: string
  /** Is this device a member of the workspace? Decides who may open the sync protocol. */
  isMember: (deviceId: string) => Promise<boolean>
  /** What a refused device is told (see MeshOptions.refusalNotice). */
  refusalNotice: (deviceId: string) => Promise<Uint8Array | undefined>
  /** Where 'connected', 'offline' and 'refused' are emitted (the mesh). */
  events: Pick<TypedEmitter<MeshEvents>, 'emit' | 'on'>
  /** Enter the peer in the peer book, seen now in `state`. */
  touch: (peerId: string, state: KnownPeer['state']) => void
  /** A sync stream or a connection was refused (counted in Mesh.refusedCount). */
  refused: () => void
  stopped: () => boolean
  /** Why this device was revoked, once it knows (see Mesh.retire). */
  retired: () => string | undefined
  /** Sync paused on this device (see Mesh.pause). */
  paused: () => boolean
  clock: Pick<MeshClock, 'random' | 'after'>
}

/**
 * The sync protocol on the mesh's connections: one session per member, opened by either side;
 * inbound streams from devices that are not members refused; a session that could not open, or
 * ended while the connection stays open, opened again with backoff.
 */
export class SyncSessions {
  private readonly sessions = new Map<string, { session: SyncSession; initiator: string }>()
  /** Peers a sync stream is being opened to. */
  private readonly opening = new Set<string>()
  /** Sync sessions to open again on a connection that stays open (see retry), by peer id. */
  private readonly retries: BackoffScheduler
  private readonly c: SyncSessionsComponents

  constructor(components: SyncSessionsComponents) {
    this.c = components
    // A stream opens even to a peer that refuses it: the wait starts over once the peer answers (see attach).
    this.retries = new BackoffScheduler({
      clock: components.clock,
      active: () => !components.stopped() && components.retired() === undefined && !components.paused(),
      resetOnSuccess: false,
    })
  }

  peers(): string[] {
    return [...this.sessions.keys()]
  }

  has(peerId: string): boolean {
    return this.sessions.has(peerId)
  }

  statsOf(peerId: string): SessionStats | undefined {
    return this.sessions.get(peerId)?.session.getStats()
  }

  /** A member connected: open its session unless one exists (or try again later). */
  async connected(peer: PeerId): Promise<void> {
    const id = peer.toString()
    if (this.c.stopped() || this.c.paused() || this.sessions.has(id) || this.opening.has(id)) return
    await this.open(peer).catch((err: unknown) => {
      log('cannot open a sync session with %s: %s', id, (err as Error).message)
      this.retry(id)
    })
  }

  /** The peer's last connection closed: no connection left to open a session on (the mesh's redial takes over). */
  disconnected(peerId: string): void {
    this.retries.cancel(peerId)
  }

  /** Close the peer's session and stop trying to open one (it was revoked). */
  drop(peerId: string): void {
    const entry = this.sessions.get(peerId)
    this.sessions.delete(peerId)
    entry?.session.close()
    this.retries.cancel(peerId)
  }

  /** Close every session and stop every retry (the mesh stopped or was retired). */
  closeAll(): void {
    this.retries.cancelAll()
    for (const { session } of this.sessions.values()) session.close()
    this.sessions.clear()
  }

  /** Force a fresh exchange with every connected member: close sessions and open new ones. */
  async resync(): Promise<void> {
    // A copy: reopening adds to the map, and a live iteration would visit the new sessions too.
    for (const [id, { session }] of [...this.sessions]) {
      session.close()
      this.sessions.delete(id)
      await this.open(peerIdFromString(id)).catch((err: unknown) =>
        log('resync: cannot open a session with %s: %s; its retry opens it', id, (err as Error).message),
      )
    }
  }

  /**
   * A device became a member (it joined, or this device joined and learnt the others): if a
   * connection to it is already open without a sync session, open one now. Such a connection
   * was made before either side knew (a device dials its bootstrap VPS, then joins; the VPS
   * hears of the new member from another device later): nothing else would open the session
   * until the connection dropped. The other side may still refuse; it opens one itself when
   * it learns of the membership.
   */
  memberAdded(peerId: string): void {
    if (this.c.stopped() || peerId === this.c.self || this.sessions.has(peerId) || this.opening.has(peerId)) return
    const peer = peerIdFromString(peerId)
    if (this.c.node.getConnections(peer).length === 0) return
    void this.c
      .isMember(peerId)
      .then(
        (member) => (member && !this.sessions.has(peerId) ? this.open(peer) : undefined),
        () => undefined,
      )
      .catch(() => this.retry(peerId))
  }

  /**
   * Open the sync session again, with the redial backoff, when it could not open or it ended
   * while a connection to the member stays open. The connection may outlive the session: the
   * relay, the blind store or a pairing use it too, so no disconnect comes to redial after. A
   * device that joined, say, was refused by the VPS that had not heard of it yet, and, if the
   * VPS's own attempt later failed as well, stayed without a session (nor a store session)
   * for as long as the connection lasted. Stops once a session exists (opened by either side),
   * the connection closes (the redial takes over) or the peer is no longer a member.
   */
  private retry(peerId: string): void {
    this.retries.schedule(peerId, () => this.reopen(peerId))
  }

  /** Fails (to be tried again) only when the session could not be opened. */
  private async reopen(peerId: string): Promise<void> {
    const peer = peerIdFromString(peerId)
    if (this.c.stopped() || this.sessions.has(peerId) || this.opening.has(peerId) || this.c.node.getConnections(peer).length === 0) return
    if (!(await this.c.isMember(peerId).catch(() => false))) return // no answer: treated as a stranger
    await this.open(peer)
  }

  /**
   * Open the sync session with a member now (after it became one, e.g. on joining). Aborted:
   * rejects with ABORTED, and a session already open is left as it is.
   */
  async openTo(peerId: string, graceMs: number, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal, 'opening a sync session')
    if (this.sessions.has(peerId)) {
      // Re-run the exchange on a fresh session so the caller can wait for it.
      const existing = this.sessions.get(peerId)
      this.sessions.delete(peerId)
      existing?.session.close()
    }
    try {
      await this.open(peerIdFromString(peerId), signal)
    } catch (err) {
      throwIfAborted(signal, 'opening a sync session')
      // The peer opened a sync stream at the same moment and kept its own (see attach): ours
      // was reset while it was being negotiated. The peer's session serves as well; it may be
      // attached a moment after ours failed.
      if (!(await abortable(this.whenSession(peerId, graceMs), signal, 'opening a sync session'))) throw err
    }
  }

  /** Resolves true once a sync session with the peer exists (at once if one does), false after `ms`. */
  private whenSession(peerId: string, ms: number): Promise<boolean> {
    if (this.sessions.has(peerId)) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off()
        resolve(this.sessions.has(peerId))
      }, ms)
      const off = this.c.events.on('connected', (e) => {
        if (e.peerId !== peerId) return
        clearTimeout(timer)
        off()
        resolve(true)
      })
    })
  }

  private async open(peer: PeerId, signal?: AbortSignal): Promise<void> {
    const retired = this.c.retired()
    if (retired !== undefined) throw new KitsyncError('DEVICE_REVOKED', retired)
    if (this.c.paused()) throw new KitsyncError('SYNC_PAUSED', 'sync is paused on this device')
    const id = peer.toString()
    this.opening.add(id)
    try {
      const dial = dialSignal(signal)
      const stream = await this.c.node
        .dialProtocol(peer, SYNC_PROTOCOL_ID, { runOnLimitedConnection: true, ...(dial === undefined ? {} : { signal: dial }) })
        .catch((err: unknown) => {
          throw syncDialError(err, id)
        })
      this.attach(stream, id, this.c.self)
    } finally {
      this.opening.delete(id)
    }
  }

  /** The sync protocol's handler: members only reach the engine. */
  async inbound(stream: Stream, connection: Connection): Promise<void> {
    const id = connection.remotePeer.toString()
    const retired = this.c.retired()
    if (retired !== undefined) {
      stream.abort(new Error(retired))
      return
    }
    if (this.c.paused()) {
      // Paused: the stream is reset before any frame, not counted as refused; the device
      // tries again with its backoff, and this one dials it on resume. A reset, not a close:
      // a closed stream could stay half open on the other side, its session waiting for an
      // end that did not come, and that session (opened by the smaller id) then won over every
      // stream this device opened on resume (see attach), until it ended.
      stream.abort(new Error('sync is paused on this device'))
      return
    }
    // No answer from the membership: treated as a stranger.
    if (!(await this.c.isMember(id).catch(() => false))) {
      // A stranger gets nothing: not a hello, not an error frame. A revoked device is told why
      // (a signed REVOKED frame), so it stops dialling.
      this.c.refused()
      const notice = await this.c
        .refusalNotice(id)
        .catch((err: unknown) => void log('cannot sign a REVOKED notice for %s: %s; refused without one', id, (err as Error).message))
      this.c.events.emit('refused', {
        peerId: id,
        reason: notice === undefined ? 'not a trusted member of this workspace' : 'a revoked device (sent it a REVOKED notice)',
        address: connection.remoteAddr.toString(),
      })
      if (notice === undefined) {
        stream.abort(new Error('not a member'))
        return
      }
      try {
        const signal = AbortSignal.timeout(NOTICE_TIMEOUT_MS)
        await lpStream(stream).write(notice, { signal })
        await stream.close({ signal })
      } catch (err) {
        stream.abort(err as Error)
      }
      return
    }
    this.attach(stream, id, id)
  }

  /**
   * One session per peer. When both sides opened a stream at once, both keep the one opened
   * by the smaller peer id, so they agree without talking about it.
   */
  private attach(stream: Stream, peerId: string, initiator: string): void {
    const retired = this.c.retired()
    if (retired !== undefined) {
      // Opened just before this device learnt it was revoked.
      stream.abort(new Error(retired))
      return
    }
    if (this.c.paused()) {
      stream.abort(new Error('sync is paused on this device'))
      return
    }
    // The peer opened this one: it answers now, so a retry waiting here (its backoff grew while
    // it refused, e.g. paused) is not needed any more, and the next one starts from the shortest wait.
    if (initiator === peerId) this.retries.cancel(peerId)
    const existing = this.sessions.get(peerId)
    if (existing !== undefined) {
      const keepExisting = existing.initiator < initiator
      if (keepExisting) {
        stream.abort(new Error('duplicate sync stream'))
        return
      }
      this.sessions.delete(peerId)
      existing.session.close()
    }
    const link = new StreamLink(stream, peerId, this.c.engine.limits.maxFrameBytes)
    const session = this.c.engine.attach(link)
    const entry = { session, initiator }
    this.sessions.set(peerId, entry)
    this.c.touch(peerId, 'connected')
    if (existing === undefined) this.c.events.emit('connected', { peerId })
    let heard = false
    void link
      .readLoop((frame) => {
        // The peer answered: this session is one it accepted, and the next retry starts from
        // the shortest wait again (a peer that refuses sends nothing at all).
        if (!heard) {
          heard = true
          this.retries.cancel(peerId)
        }
        session.receive(frame)
      })
      .then(async (err) => {
        // Frames that arrived before the end are still handled (a peer may send and then close).
        await session.idle()
        // A length prefix over the limit (or a malformed one) is a protocol error like any other.
        const name = err?.name ?? ''
        session.close(name.startsWith('Invalid') ? new KitsyncError('PROTOCOL_ERROR', `malformed frame length: ${err?.message ?? name}`) : undefined)
        if (this.sessions.get(peerId) !== entry) return
        this.sessions.delete(peerId)
        this.c.touch(peerId, this.c.node.getConnections(peerIdFromString(peerId)).length > 0 ? 'connected' : 'disconnected')
        const reason = err !== undefined && err.name !== 'UnexpectedEOFError' ? { code: 'CONNECTION_CLOSED', message: err.message } : undefined
        this.c.events.emit('offline', reason === undefined ? { peerId } : { peerId, reason })
        if (!this.c.stopped() && this.c.node.getConnections(peerIdFromString(peerId)).length > 0) this.retry(peerId)
      })
  }
}
