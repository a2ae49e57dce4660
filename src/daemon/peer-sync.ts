import { throwIfAborted } from '../core/abort.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { isOnDemand } from '../core/selection.js'
import type { SyncNowPeer, SyncNowReport } from '../core/sync-types.js'
import type { DeviceRecord, WorkspaceEvents } from '../core/workspace-types.js'
import type { Mesh } from '../net/mesh.js'
import type { SyncEngine } from '../sync/sync-engine.js'
import type { SyncSession } from '../sync/sync-session.js'
import { debugLog } from '../core/debug-log.js'
import { SyncActivity } from './sync-status.js'
import { DEFAULT_SYNC_NOW_MS, type RunningSync, type WorkspaceSync } from './workspace-sync.js'

const log = debugLog('daemon:sync')

/** How often the running peer saves its sync counters (and always when it stops). */
export const STATS_SAVE_INTERVAL_MS = 30_000

/** What PeerSync needs from the workspace. */
export interface PeerSyncWorkspace {
  readonly sync: WorkspaceSync
  devices(): Promise<DeviceRecord[]>
  flushDoc(name: string): Promise<void>
  emitEvent<K extends keyof WorkspaceEvents>(event: K, payload: WorkspaceEvents[K]): void
  on<K extends keyof WorkspaceEvents>(event: K, listener: (payload: WorkspaceEvents[K]) => void): () => void
  onDocLoaded(listener: (e: { name: string }) => void): () => void
  onClose(hook: () => Promise<void>): void
}

/**
 * The running peer's side of `sync now`, `fetch` and `reset`, and the wiring of the engine's
 * counters and progress into the workspace (saved periodically and on stop).
 */
export class PeerSync implements RunningSync {
  private constructor(
    private readonly workspace: PeerSyncWorkspace,
    readonly engine: SyncEngine,
    private readonly mesh: Mesh,
    private readonly self: string,
  ) {}

  /** Wire into a starting peer, before its network starts (so no event is missed). */
  static async attach(workspace: PeerSyncWorkspace, engine: SyncEngine, mesh: Mesh, self: string): Promise<PeerSync> {
    const peerSync = new PeerSync(workspace, engine, mesh, self)
    await workspace.sync.restore(engine.stats)
    await workspace.sync.restoreLedger(engine)
    workspace.sync.activity = new SyncActivity(engine)
    workspace.sync.running = peerSync
    engine.on('progress', (e) => workspace.emitEvent('sync:progress', e))
    // What a device holds is final when it goes offline: saved then, so a kill -9 while it is away
    // does not count its writes as pending again (the own writes are recounted at the next start).
    engine.on('offline', () => void workspace.sync.persist(true))
    workspace.on('sync:conflict', (e) => {
      const others = [...new Set(e.versions.map((v) => v.device).filter((d) => d !== self))]
      engine.stats.conflict(e.collection, others)
    })
    // An on-demand collection held from now on (drawn here, or fetched) widens what we want.
    workspace.onDocLoaded(({ name }) => {
      if (isOnDemand(name)) void engine.refreshInterest()
    })
    const timer = setInterval(() => void workspace.sync.persist(), STATS_SAVE_INTERVAL_MS)
    timer.unref()
    await workspace.sync.applyPause()
    workspace.onClose(async () => {
      clearInterval(timer)
      workspace.sync.stopPauseTimer()
      await workspace.sync.closeLedger()
      workspace.sync.running = undefined
      workspace.sync.activity = undefined
    })
    return peerSync
  }

  /** A revoked device exchanges with no one: network commands fail with DEVICE_REVOKED. */
  private assertNotRevoked(): void {
    if (this.mesh.retired !== undefined) throw new KitsyncError('DEVICE_REVOKED', this.mesh.retired)
  }

  /** Paused: `sync now` and fetch fail with SYNC_PAUSED rather than report nothing reached. */
  private assertNotPaused(): void {
    if (this.mesh.paused) throw new KitsyncError('SYNC_PAUSED', 'sync is paused on this device: resume it with kitsync sync resume')
  }

  pause(): void {
    this.mesh.pause()
  }

  resume(): void {
    this.mesh.resume()
    // Exchange at once with every device (dialing the ones not connected), not after a backoff.
    void this.syncNow(DEFAULT_SYNC_NOW_MS).catch((err: unknown) => log('the exchange on resume failed', err))
  }

  async syncNow(timeoutMs: number, signal?: AbortSignal): Promise<SyncNowReport> {
    this.assertNotRevoked()
    this.assertNotPaused()
    throwIfAborted(signal, 'sync now')
    const startedAt = Date.now()
    const deadline = startedAt + timeoutMs
    const devices = (await this.workspace.devices()).filter((d) => !d.self && d.state === 'trusted' && d.peerId !== this.self)
    // Addresses waiting for a redial (bootstrap, lost peers) are dialed now, not after the backoff.
    this.mesh.redialNow()
    // Aborted: every wait below ends at once (dials are cancelled), then the call rejects.
    const peers = await Promise.all(devices.map((d) => this.syncPeer(d, deadline, signal)))
    throwIfAborted(signal, 'sync now')
    return { startedAt, ms: Date.now() - startedAt, peers }
  }

  private async syncPeer(device: DeviceRecord, deadline: number, signal: AbortSignal | undefined): Promise<SyncNowPeer> {
    const started = Date.now()
    const before = this.engine.stats.peerCounters(device.peerId)
    const result = (reached: boolean, collections: number, complete: boolean, error?: KitsyncError): SyncNowPeer => {
      const after = this.engine.stats.peerCounters(device.peerId)
      return {
        peerId: device.peerId,
        name: device.name,
        reached,
        ...(error === undefined ? {} : { error: { code: error.code, message: error.message } }),
        collections,
        complete,
        bytesIn: after.bytesIn - before.bytesIn,
        bytesOut: after.bytesOut - before.bytesOut,
        updatesApplied: after.updatesApplied - before.updatesApplied,
        ms: Date.now() - started,
      }
    }
    let session: SyncSession | undefined
    try {
      session = await this.sessionWith(device.peerId, deadline, signal)
    } catch (err) {
      const e = toKitsyncError(err)
      return result(false, 0, false, e.code === 'INTERNAL' ? new KitsyncError('PEER_UNREACHABLE', e.message) : e)
    }
    const round = await beforeDeadline(session.resync(undefined, { progress: true }), deadline, signal)
    if (round === undefined) return result(true, 0, false, new KitsyncError('ABORTED', 'the exchange did not finish before the deadline'))
    if (!round.complete && session.isClosed)
      return result(true, round.collectionsDone, false, new KitsyncError('CONNECTION_CLOSED', 'the session closed during the exchange'))
    // What was merged is on disk before the report says it moved.
    await this.workspace.sync.persist()
    return result(true, round.collections, round.complete)
  }

  /** A ready sync session with a device: the open one, or a new one dialed now. */
  private async sessionWith(peerId: string, deadline: number, signal: AbortSignal | undefined): Promise<SyncSession> {
    let session = this.find(peerId)
    if (session === undefined) {
      const opened = await beforeDeadline(
        this.mesh.openSyncTo(peerId, undefined, { signal }).then(
          () => undefined,
          (err: unknown) => toKitsyncError(err),
        ),
        deadline,
        signal,
      )
      if (opened instanceof KitsyncError) throw new KitsyncError('PEER_UNREACHABLE', `cannot reach ${peerId}: ${opened.message}`)
      session = this.find(peerId)
      if (session === undefined) throw new KitsyncError('PEER_UNREACHABLE', `no sync session with ${peerId} before the deadline`)
    }
    await beforeDeadline(session.whenReady(), deadline, signal)
    if (!session.isReady || session.isClosed) {
      // Both sides opened a stream at once and the other one won: use that.
      const other = this.find(peerId)
      if (other !== undefined && other !== session) await beforeDeadline(other.whenReady(), deadline, signal)
      if (other === undefined || !other.isReady) throw new KitsyncError('PEER_UNREACHABLE', `no sync session with ${peerId} before the deadline`)
      session = other
    }
    return session
  }

  private find(peerId: string): SyncSession | undefined {
    const open = this.engine.sessionsWith(peerId)
    return open.find((s) => s.isReady) ?? open[0]
  }

  async pull(collection: string, timeoutMs: number, signal?: AbortSignal): Promise<{ peerId: string; complete: boolean }[]> {
    this.assertNotRevoked()
    this.assertNotPaused()
    throwIfAborted(signal, 'fetch')
    const deadline = Date.now() + timeoutMs
    const sessions = this.engine.sessions().filter((s) => s.isReady && !s.isClosed)
    const results = await Promise.all(
      sessions.map(async (s) => {
        // Aborted: the exchange round goes on in the session; only the wait for it ends.
        const round = await beforeDeadline(s.resync([collection]), deadline, signal)
        return { peerId: s.peerId, complete: round?.complete === true }
      }),
    )
    await this.workspace.flushDoc(collection)
    throwIfAborted(signal, 'fetch')
    return results
  }

  async reset(): Promise<number> {
    const sessions = this.mesh.connectedPeers().length
    this.mesh.forgetPeers()
    await this.mesh.resync()
    await this.workspace.sync.persist()
    return sessions
  }
}

/** The promise's value, or undefined once the deadline passes or the signal aborts. */
function beforeDeadline<T>(promise: Promise<T>, deadline: number, signal?: AbortSignal): Promise<T | undefined> {
  if (signal?.aborted === true) {
    promise.catch(() => undefined) // no longer waited for
    return Promise.resolve(undefined)
  }
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    const onAbort = (): void => {
      done()
      resolve(undefined)
    }
    const timer = setTimeout(onAbort, Math.max(0, deadline - Date.now()))
    signal?.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => {
        done()
        resolve(v)
      },
      (err: unknown) => {
        done()
        reject(err)
      },
    )
  })
}
