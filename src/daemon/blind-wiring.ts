import { setImmediate } from 'node:timers'
import { debugLog } from '../core/debug-log.js'
import { openBlind, serveBlind, type StreamHandler } from '../net/blind-link.js'
import type { Mesh } from '../net/mesh.js'
import { BlindClient, type SnapshotPolicy } from '../blind/blind-client.js'
import type { BlindServer } from '../blind/blind-server.js'
import { blindUnitHost } from './blind-unit-host.js'
import type { LocalWorkspace } from './local-workspace.js'

const log = debugLog('daemon:blind')

/** What `status` shows of the blind store: the store's figures on the VPS, the sessions on a device. */
export type BlindStatus =
  | { role: 'store'; storeId: string; head: number; snapshotSeq: number; sinceCount: number; sinceBytes: number; sessions: number }
  | {
      role: 'device'
      stores: { peerId: string; live: boolean; cursor: number; pending: boolean }[]
      lastError?: { peerId: string; code: string; message: string }
    }

const MAX_RETRY_MS = 30_000

/**
 * Wires the blind store into a peer. On an untrusted peer (the VPS) it serves
 * `/kitsync/blind/1.0.0` from its LevelDB to trusted members; on a trusted device it opens a
 * session with every untrusted member it connects to, uploads what the store lacks and
 * downloads what it missed.
 */
export class BlindWiring {
  readonly client: BlindClient
  private server: Promise<BlindServer> | undefined
  private mesh: Mesh | undefined
  private stopped = false
  private readonly retries = new Map<string, { attempt: number; timer?: NodeJS.Timeout }>()
  /** Stores a session is being opened with. */
  private readonly opening = new Set<string>()
  private lastError: { peerId: string; code: string; message: string } | undefined
  private serverValue: BlindServer | undefined

  constructor(
    private readonly workspace: LocalWorkspace,
    private readonly self: string,
    policy?: SnapshotPolicy,
  ) {
    const keys = (): LocalWorkspace['keys'] => workspace.keys
    this.client = new BlindClient(
      {
        get workspaceId() {
          return workspace.workspaceId
        },
        // Local-only collections never leave the device, not even encrypted (checked again at
        // each upload: a collection can become local-only while the peer runs).
        collectionNames: () => workspace.collectionNames().filter((name) => !workspace.sync.selection.localOnly(name)),
        shares: (name) => !workspace.sync.selection.localOnly(name),
        openDoc: (name) => workspace.openDoc(name),
        flushDoc: (name) => workspace.flushDoc(name),
        getLocal: (key) => workspace.store.getLocal(key),
        putLocal: (key, value) => workspace.store.putLocal(key, value),
        currentKey: () => {
          const k = keys()
          const key = k?.key()
          return k === undefined || key === undefined ? undefined : { epoch: k.epoch, key }
        },
        key: (epoch) => keys()?.key(epoch),
        units: blindUnitHost(workspace),
      },
      { schedule: (fn) => setImmediate(fn), ...(policy === undefined ? {} : { policy }) },
    )
    // Every document is tracked: whether its changes go to the store is decided when they are
    // uploaded (shares), so a collection that stops being local-only is uploaded again.
    workspace.onDocLoaded(({ name, doc, adopted }) => this.client.track(name, doc, adopted === true))
    // Shared folders' content: units written here or merged from a trusted peer (not from a
    // store), and blobs that arrive; whether they go is decided at upload (blind-unit-host.ts).
    workspace.units.onCommit((collection, unit) => this.client.unitChanged(collection, unit))
    workspace.units.on('unit:update', ({ collection, unit, from }) => {
      if (!workspace.isUntrusted(from)) this.client.unitChanged(collection, unit, false)
    })
    workspace.units.on('blob:stored', () => this.client.blobsChanged())
    this.client.on('live', ({ peerId }) => this.retries.delete(peerId))
    this.client.on('closed', ({ peerId, error }) => {
      if (error !== undefined) this.lastError = { peerId, code: error.code, message: error.message }
      this.retry(peerId)
    })
    this.client.on(
      'skipped',
      ({ peerId, seq, reason }) =>
        void workspace
          .audit('sync-error', `blind store entry ${seq} skipped: ${reason}`, peerId)
          .catch((err: unknown) => log(`cannot write the audit entry for blind store entry ${seq} of ${peerId}, skipped: ${reason}`, err)),
    )
    // A revoked device loses its store sessions at once (the mesh also hangs up on it).
    workspace.on('device:revoked', ({ peerId }) => this.serverValue?.disconnect(peerId))
  }

  /** The protocol handler (every peer has it; only an untrusted one serves, to trusted members). */
  readonly handler: StreamHandler = (stream, connection) => {
    void this.storeServer().then(
      (server) => serveBlind(server)(stream, connection),
      () => stream.abort(new Error('blind store unavailable')),
    )
  }

  attach(mesh: Mesh): void {
    this.mesh = mesh
    mesh.on('connected', ({ peerId }) => this.connect(peerId))
  }

  /** Sync paused: close the sessions with the stores (nothing goes up or comes down until resume). */
  pause(): void {
    for (const session of this.client.sessions()) session.close()
  }

  /** Open a session with a store peer if this device is trusted and the peer is an untrusted member. */
  connect(peerId: string): void {
    const mesh = this.mesh
    if (this.stopped || mesh === undefined || mesh.paused) return // paused: opened on resume (the mesh's connected event)
    if (!this.workspace.isUntrusted(peerId) || this.workspace.isUntrusted(this.self) || (this.workspace.keys?.epoch ?? 0) === 0) return
    // One session per store: a second connect() while the first is still opening (the mesh's
    // connected event and a join both ask) would make a second session and a second catch-up.
    if (this.opening.has(peerId) || this.client.sessions().some((s) => s.peerId === peerId)) return
    this.opening.add(peerId)
    openBlind(mesh.node, peerId, this.client)
      .catch((err: Error) => {
        this.lastError = { peerId, code: 'PEER_UNREACHABLE', message: err.message }
        this.retry(peerId)
      })
      .finally(() => this.opening.delete(peerId))
  }

  private retry(peerId: string): void {
    if (this.stopped || !(this.mesh?.connectedPeers().includes(peerId) ?? false)) return
    const state = this.retries.get(peerId) ?? { attempt: 0 }
    if (state.timer !== undefined) return
    const delay = Math.min(MAX_RETRY_MS, 1000 * 2 ** state.attempt)
    state.attempt++
    state.timer = setTimeout(() => {
      state.timer = undefined
      this.connect(peerId)
    }, delay)
    state.timer.unref()
    this.retries.set(peerId, state)
  }

  /** The store (on the VPS only: its modules load the first time a device opens a session). */
  private storeServer(): Promise<BlindServer> {
    this.server ??= (async () => {
      const [{ LevelBlindStorage }, { BlindServer }] = await Promise.all([import('../store/blind-store.js'), import('../blind/blind-server.js')])
      const storage = await LevelBlindStorage.open(this.workspace.store.db)
      this.serverValue = new BlindServer(storage, {
        workspaceId: () => this.workspace.workspaceId,
        authorize: async (peerId) => this.workspace.isUntrusted(this.self) && (await this.workspace.isTrusted(peerId)),
      })
      return this.serverValue
    })()
    return this.server
  }

  async status(): Promise<BlindStatus> {
    if (this.workspace.isUntrusted(this.self)) {
      const server = await this.storeServer()
      return { role: 'store', ...server.storage.state(), sessions: server.liveSessions() }
    }
    const stores = this.client.sessions().map((s) => ({ peerId: s.peerId, live: s.live, cursor: s.cursor, pending: this.client.pending(s) }))
    return this.lastError === undefined ? { role: 'device', stores } : { role: 'device', stores, lastError: this.lastError }
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const r of this.retries.values()) clearTimeout(r.timer)
    this.serverValue?.closeAll()
    await this.client.closeAll()
  }
}
