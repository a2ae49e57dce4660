import { debugLog } from '../core/debug-log.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { BLIND_PROTOCOL_VERSION, BlindType, decodeBlindFrame, encodeBlindFrame, type BlindFrame } from './blind-frames.js'
import type { PeerLink } from '../sync/sync-host.js'
import type { BlindEntry, BlindStorage, BlindStoreState } from './blind-storage.js'

const log = debugLog('blind:server')

/**
 * The untrusted storage peer's side of the blind store (pure: storage and transport plug in).
 * It keeps opaque entries {seq, epoch, ciphertext} numbered with its own increasing sequence,
 * plus at most one snapshot that replaces every entry up to the seq it covers. It cannot read
 * any of it: it only knows who may talk to it (members, from the synced `_members`/`_revoked`).
 * All operations of all sessions run one at a time, so every device sees the seqs in order.
 */

export interface BlindServerOptions {
  workspaceId: () => string
  /** May this device use the store? (a trusted member, not revoked). Checked on hello and on every write. */
  authorize: (peerId: string) => Promise<boolean>
  /** Largest ciphertext accepted (default 32 MiB). */
  maxEntryBytes?: number
}

/** At most this many bytes queued for one device during its catch-up. */
const CATCH_UP_QUEUE_BYTES = 256 * 1024
/**
 * A live device with more than this queued (frames not yet taken by the stream, and the
 * stream's own buffer) gets no more entries pushed: it catches up from storage instead, at its
 * own pace, then is live again. Entries pushed to a device that reads slower than others write
 * were the VPS's memory that nothing bounded.
 */
export const LIVE_QUEUE_BYTES = 1024 * 1024

export class BlindServer {
  private readonly sessions = new Set<BlindServerSession>()
  private chain: Promise<void> = Promise.resolve()

  constructor(
    readonly storage: BlindStorage,
    readonly options: BlindServerOptions,
  ) {}

  attach(link: PeerLink): BlindServerSession {
    const session = new BlindServerSession(this, link)
    this.sessions.add(session)
    return session
  }

  /** Close every session of a device (it was revoked). */
  disconnect(peerId: string): void {
    for (const s of [...this.sessions]) if (s.peerId === peerId) s.close(new KitsyncError('NOT_A_MEMBER', 'this device is no longer a member'))
  }

  closeAll(): void {
    for (const s of [...this.sessions]) s.close()
  }

  liveSessions(): number {
    return [...this.sessions].filter((s) => s.live).length
  }

  /** @internal Run one operation after every earlier one. */
  serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn)
    this.chain = next.catch(() => undefined) // the caller gets the error from `next`; the chain only keeps the order
    return next
  }

  /** @internal */
  removed(session: BlindServerSession): void {
    this.sessions.delete(session)
  }

  /** @internal A new entry: every other live session gets it. */
  broadcast(from: BlindServerSession, entry: BlindEntry): void {
    for (const s of this.sessions) if (s !== from) s.deliver(entry)
  }
}

export class BlindServerSession {
  readonly peerId: string
  live = false
  private hello = false
  private closed = false
  /** Every entry up to this seq has been sent to the device (or a snapshot covering it). */
  private sentSeq = 0
  /** Live, but catching up from storage again (it fell behind): entries are not pushed meanwhile. */
  private behind = false

  constructor(
    private readonly server: BlindServer,
    private readonly link: PeerLink,
  ) {
    this.peerId = link.peerId
  }

  receive(bytes: Uint8Array): void {
    if (this.closed) return
    let frame: BlindFrame
    try {
      frame = decodeBlindFrame(bytes)
    } catch (err) {
      this.close(toKitsyncError(err))
      return
    }
    void this.server.serial(() => this.handle(frame)).catch((err: unknown) => this.close(toKitsyncError(err)))
  }

  send(frame: BlindFrame): void {
    if (!this.closed) this.link.send(encodeBlindFrame(frame))
  }

  /** @internal A new entry of another device: pushed to a live device that keeps up. */
  deliver(entry: BlindEntry): void {
    if (!this.live || this.behind || this.closed) return
    if (this.link.bufferedBytes > LIVE_QUEUE_BYTES) {
      // This entry is stored already: the catch-up reads it with the others.
      this.behind = true
      void this.catchUp(this.sentSeq, false).catch((err: unknown) => this.close(toKitsyncError(err)))
      return
    }
    this.send({ type: BlindType.ENTRY, ...entry })
    this.sentSeq = entry.seq
  }

  close(error?: KitsyncError): void {
    if (this.closed) return
    this.closed = true
    this.live = false
    this.link.close(error)
    this.server.removed(this)
  }

  private async handle(frame: BlindFrame): Promise<void> {
    if (this.closed) return
    const { storage, options } = this.server
    if (frame.type === BlindType.ERROR) return this.close()
    if (frame.type === BlindType.HELLO) {
      if (this.hello) throw new KitsyncError('PROTOCOL_ERROR', 'second hello')
      this.hello = true
      if (frame.version !== BLIND_PROTOCOL_VERSION) throw new KitsyncError('PROTOCOL_ERROR', `blind store protocol version ${frame.version} is not supported`)
      if (frame.workspaceId !== options.workspaceId()) throw new KitsyncError('WORKSPACE_MISMATCH', 'this store belongs to another workspace')
      await this.authorize()
      const state = storage.state()
      this.send({
        type: BlindType.WELCOME,
        storeId: state.storeId,
        snapshotSeq: state.snapshotSeq,
        head: state.head,
        sinceCount: state.sinceCount,
        sinceBytes: state.sinceBytes,
      })
      const from = frame.storeId === state.storeId ? Math.min(frame.cursor, state.head) : 0
      // The catch-up goes at the device's pace, outside the one-at-a-time section: other
      // devices' writes go on meanwhile, and a device that reads slowly holds up nobody.
      void this.catchUp(from, true).catch((err: unknown) => this.close(toKitsyncError(err)))
      return
    }
    if (!this.live) throw new KitsyncError('PROTOCOL_ERROR', 'blind frame before hello')
    const max = options.maxEntryBytes ?? 32 * 1024 * 1024
    if (frame.type === BlindType.PUT) {
      if (frame.ciphertext.byteLength > max) throw new KitsyncError('PROTOCOL_ERROR', `entry of ${frame.ciphertext.byteLength} bytes is over ${max}`)
      await this.authorize()
      const seq = await storage.append(frame.epoch, frame.ciphertext)
      // Its own entry: the device has it (and, pushed to in order, every one before it).
      if (this.live && !this.behind) this.sentSeq = seq
      this.send({ type: BlindType.ACK, seq })
      this.server.broadcast(this, { seq, epoch: frame.epoch, ciphertext: frame.ciphertext })
      return
    }
    if (frame.type === BlindType.SNAPSHOT_PUT) {
      if (frame.ciphertext.byteLength > 2 * max) throw new KitsyncError('PROTOCOL_ERROR', `snapshot of ${frame.ciphertext.byteLength} bytes is over ${2 * max}`)
      await this.authorize()
      const state = storage.state()
      // An older snapshot than the one held (another device was faster) is dropped.
      if (frame.covers > state.snapshotSeq && frame.covers <= state.head) {
        await storage.replaceWithSnapshot({ covers: frame.covers, epoch: frame.epoch, ciphertext: frame.ciphertext })
      }
      this.send({ type: BlindType.ACK, seq: frame.covers })
      return
    }
    throw new KitsyncError('PROTOCOL_ERROR', `unexpected blind frame type ${frame.type} from a device`)
  }

  /**
   * Send the snapshot (if the device is before it) and every entry after `from`, never more
   * than CATCH_UP_QUEUE_BYTES queued for this device: twenty devices catching up at once used to
   * have the whole store queued each (80 MiB of buffers on the VPS, 360 MiB RSS). The storage
   * iterates a snapshot of the entries (LevelDB iterators read from one): a compaction meanwhile
   * does not take entries away under it. Then, one at a time with every other operation, what
   * was added (or compacted into a new snapshot) meanwhile, and LIVE: from there on this session
   * gets each new entry as it is stored, unless it falls behind (LIVE_QUEUE_BYTES): then this
   * runs again from the last entry it was sent, without a second LIVE.
   */
  private async catchUp(from: number, announce: boolean): Promise<void> {
    const { storage } = this.server
    let sent = from
    // `sent`: the device has everything up to it (entries are numbered without gaps after the
    // snapshot).
    const sendFrom = async (state: BlindStoreState, wait: boolean): Promise<void> => {
      if (sent < state.snapshotSeq) {
        const snap = await storage.snapshot()
        if (snap !== undefined) {
          this.send({ type: BlindType.SNAPSHOT, ...snap })
          sent = Math.max(sent, snap.covers)
        }
      }
      for await (const entry of storage.entriesAfter(sent)) {
        // A gap while other operations run: a new snapshot took entries away; the rest comes
        // after it, in the one-at-a-time pass (where nothing changes under us).
        if (this.closed || (wait && entry.seq !== sent + 1)) return
        this.send({ type: BlindType.ENTRY, ...entry })
        sent = entry.seq
        if (wait) await this.link.whenBelow?.(CATCH_UP_QUEUE_BYTES)
      }
    }
    await sendFrom(storage.state(), true)
    await this.server.serial(async () => {
      if (this.closed) return
      await sendFrom(storage.state(), false)
      if (this.closed) return
      this.sentSeq = sent
      // A device that fell behind is live already: it only gets the entries, no second LIVE.
      if (announce) this.send({ type: BlindType.LIVE, head: storage.state().head })
      this.live = true
      this.behind = false
    })
  }

  private async authorize(): Promise<void> {
    // A check that fails refuses, as a "no" does.
    const allowed = await this.server.options.authorize(this.peerId).catch((err: unknown) => {
      log(`cannot check whether ${this.peerId} is a member; refused`, err)
      return false
    })
    if (!allowed) {
      throw new KitsyncError('NOT_A_MEMBER', 'only trusted members of the workspace may use this store')
    }
  }
}
