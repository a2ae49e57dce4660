import { readFile, rm, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { setImmediate } from 'node:timers'
import { throwIfAborted } from '../core/abort.js'
import { debugLog, setDebugSink } from '../core/debug-log.js'
import { isKitsyncError, KitsyncError } from '../core/errors.js'
import { DEFAULT_MAX_DEVICES, MEMBERS_COLLECTION } from '../core/membership.js'
import { decodeToken } from '../protocol/pair-token.js'
import { loadOrCreateIdentity } from '../net/identity.js'
import { libp2pDebugSink } from '../net/debug-sink.js'
import { DEFAULT_LISTEN } from '../net/libp2p-node.js'
import { Mesh } from '../net/mesh.js'
import type { DeviceView, NetworkStatus, SelfRevocation, WorkspaceEvents } from '../core/workspace-types.js'
import { handleKeys, KEYS_PROTOCOL_ID, pullKeys, pushKeys, type KeyHolder } from '../net/key-exchange.js'
import { joinWithToken, PAIR_PROTOCOL_ID, pairingHandler } from '../net/pairing.js'
import { BLIND_PROTOCOL_ID } from '../net/blind-link.js'
import { checkRevokedNotice, signRevokedNotice } from '../net/revocation-notice.js'
import { BlindWiring } from './blind-wiring.js'
import type { SnapshotPolicy } from '../blind/blind-client.js'
import { checkControlSocket, homePaths, readWorkspaceConfig, rememberBootstrap, type HomePaths } from '../store/home.js'
import { SyncEngine } from '../sync/sync-engine.js'
import type { SyncLimits } from '../sync/sync-limits.js'
import { ControlServer, socketAnswers } from './control-server.js'
import { Invites, type Invite } from './invites.js'
import { LocalWorkspace } from './local-workspace.js'
import { PeerSync } from './peer-sync.js'
import { wireFolders, type FolderWiring } from './folder-lazy.js'
import { httpPortFor, metricsSourceOf, PeerHttp, type HttpOption } from './peer-http.js'
import { StrangerAudit } from './stranger-audit.js'
import { DeviceClocks } from './device-clocks.js'
import { heldData, workspaceExists } from './held-data.js'
import { HistorySyncStore } from './history-sync-store.js'

const log = debugLog('daemon:peer')

export interface PeerOptions {
  home: string
  name?: string
  /** Multiaddrs to listen on (default: all interfaces, TCP port 4771). */
  listen?: string[]
  /** Multiaddrs of peers to dial; added to the ones remembered in workspace.json. */
  bootstrap?: string[]
  /** mDNS discovery on the LAN (default on). */
  mdns?: boolean
  /** Serve the control socket (default true). */
  control?: boolean
  /** Limits of the sync protocol per peer (defaults in DEFAULT_SYNC_LIMITS). */
  syncLimits?: Partial<SyncLimits>
  /** Serve as a circuit relay v2 for members (`peer start --relay`, on the VPS). */
  relay?: boolean
  /** When this device uploads a snapshot to a VPS store (default DEFAULT_SNAPSHOT_POLICY; benchmarks change it). */
  snapshotPolicy?: SnapshotPolicy
  /** Selective sync: the items this device syncs (saved in workspace.json; null: everything). */
  items?: string[] | null
  /** Collections never sent to nor accepted from other devices (saved in workspace.json). */
  localOnly?: string[]
  /** The HTTP API and /metrics on loopback (needs the control socket): `{}` on the default port, `{port}`, or false; absent: off. */
  http?: HttpOption
  /** Workspace event listeners attached before the network starts, so no event is missed. */
  listeners?: { [K in keyof WorkspaceEvents]?: (payload: WorkspaceEvents[K]) => void }
}

export interface JoinResult {
  workspaceId: string
  name: string
  inviter: string
  caughtUp: boolean
}

/**
 * The peer process: owns the store of one home folder, runs the mesh (libp2p + sync engine),
 * issues and accepts pairing tokens, and serves the control socket.
 */
export class Peer {
  private stopping: Promise<void> | undefined
  /** The HTTP API, when served (started right after the peer is made, see start). */
  http: PeerHttp | undefined
  /** The shared folders: started at once when placed here, else at the first folder call (folder-lazy.ts). */
  folders: FolderWiring | undefined

  private constructor(
    readonly workspace: LocalWorkspace,
    readonly engine: SyncEngine,
    readonly mesh: Mesh,
    readonly invites: Invites,
    readonly control: ControlServer | undefined,
    readonly paths: HomePaths,
    readonly startedAt: number,
    readonly bootstrap: string[],
    readonly blind: BlindWiring,
    /** The inviter of a join in progress (join() opens that session itself). */
    private readonly joining: { inviter?: string },
    /** Refusals of strangers, summarised in the audit log. */
    readonly strangers: StrangerAudit,
    readonly clocks: DeviceClocks,
  ) {}

  static async start(options: PeerOptions): Promise<Peer> {
    // The library's debug lines go where libp2p's go (DEBUG=kitsync:*).
    setDebugSink(libp2pDebugSink)
    const paths = homePaths(options.home)
    let workspace: LocalWorkspace
    try {
      workspace = await LocalWorkspace.open({ home: paths.home, ...(options.name === undefined ? {} : { name: options.name }) })
    } catch (err) {
      if (isKitsyncError(err, 'STORE_LOCKED')) {
        const pid = await readPid(paths.pid)
        // Another user's socket is not asked (checkControlSocket refuses it): not ours, not serving.
        const serving = await checkControlSocket(paths.socket).then(
          (ours) => ours && socketAnswers(paths.socket),
          () => false,
        )
        throw new KitsyncError(
          'PEER_ALREADY_RUNNING',
          serving
            ? `a peer is already running for ${paths.home}${pid === undefined ? '' : ` (pid ${pid})`}`
            : `the store of ${paths.home} is held by another kitsync process`,
          { cause: err, details: pid === undefined ? {} : { pid } },
        )
      }
      throw err
    }
    const cleanup: (() => Promise<void>)[] = [() => workspace.close()]
    try {
      if (options.items !== undefined || options.localOnly !== undefined) {
        await workspace.setItems({
          ...(options.items === undefined ? {} : { items: { set: options.items } }),
          ...(options.localOnly === undefined ? {} : { localOnly: { set: options.localOnly } }),
        })
      }
      const identity = await loadOrCreateIdentity(paths.identity)
      const self = identity.deviceId
      const config = await rememberBootstrap(paths, options.bootstrap ?? [])
      const bootstrap = config?.bootstrap ?? options.bootstrap ?? []
      const engine = new SyncEngine(workspace, {
        schedule: (fn) => setImmediate(fn),
        history: new HistorySyncStore({ store: workspace.store, retentionOf: (name) => workspace.historyDesk.retentionOf(name), deviceId: self }),
        ...(options.syncLimits === undefined ? {} : { limits: options.syncLimits }),
      })
      workspace.onDocLoaded(({ name, doc }) => engine.track(name, doc))
      // Read at each join: `kitsync devices limit N` changes it while the peer runs.
      const invites = await Invites.load(paths.invites, workspace, self, async () => (await readWorkspaceConfig(paths))?.maxDevices ?? DEFAULT_MAX_DEVICES)
      // Workspace keys go to trusted members only: pulled on every new session, pushed after a
      // rotation (and passed on by whoever receives a newer epoch).
      const keys = workspace.keys
      const keyHolder: KeyHolder = {
        isTrusted: (id) => workspace.isTrusted(id),
        epoch: () => keys?.epoch ?? 0,
        keysAfter: (epoch) => keys?.export(epoch) ?? {},
        receive: async (received, from) => {
          if (keys === undefined || !(await keys.merge(received))) return
          await workspace.audit('key-rotated', `workspace key epoch ${keys.epoch}, received from …${from.slice(-8)}`)
          // A member missed now pulls the keys when it next connects.
          for (const id of mesh.connectedPeers())
            if (id !== from && !workspace.isUntrusted(id))
              void pushKeys(mesh.node, id, keys.export(0)).catch((err: unknown) => log(`cannot push keys to ${id}`, err))
        },
      }
      // The encrypted store: served by an untrusted peer (the VPS), used by trusted devices.
      const blind = new BlindWiring(workspace, self, options.snapshotPolicy)
      const joining: { inviter?: string } = {}
      // What strangers cause (refused pairings and connections) reaches `_audit` as summaries.
      const strangers = new StrangerAudit(workspace)
      cleanup.unshift(() => strangers.stop())
      const clocks = new DeviceClocks((id) => workspace.isMember(id))
      // Signed once per revoked device (a revocation never changes): one that keeps dialling
      // does not cost a signature each time. As many entries as `_revoked` has.
      const notices = new Map<string, Promise<Uint8Array>>()
      const mesh: Mesh = await Mesh.create({
        privateKey: identity.privateKey,
        engine,
        isMember: (id) => workspace.isMember(id),
        // Without --listen: what `join --listen` remembered (a second device on this machine), else the default.
        listen: options.listen ?? (Array.isArray(config?.listen) && config.listen.length > 0 ? config.listen : DEFAULT_LISTEN),
        bootstrap,
        mdns: options.mdns ?? true,
        discoveryKeys: () => keys?.all() ?? [],
        relay: options.relay ?? false,
        members: async () => Object.keys(await workspace.members()),
        // A revoked device that dials is told why, signed by this device (see checkRevokedNotice).
        refusalNotice: async (id) => {
          // Only a trusted member's notice is believed: an untrusted one (the VPS) sends none.
          if (workspace.isUntrusted(self)) return undefined
          const r = (await workspace.revocations())[id]
          if (r === undefined) return undefined
          const statement = {
            workspaceId: workspace.workspaceId,
            revoked: id,
            revokedBy: r.revokedBy,
            revokedAt: r.revokedAt,
            reason: (r.reason ?? '').slice(0, 1000),
            signer: self,
          }
          const key = `${statement.workspaceId} ${id}`
          const notice = notices.get(key) ?? signRevokedNotice(identity.privateKey, statement)
          notices.set(key, notice)
          return notice
        },
        handlers: {
          [BLIND_PROTOCOL_ID]: blind.handler,
          [PAIR_PROTOCOL_ID]: pairingHandler(invites, self, strangers.guard),
          [KEYS_PROTOCOL_ID]: (stream, connection) => handleKeys(stream, connection, keyHolder),
          ...clocks.handlers,
        },
      })
      cleanup.unshift(() => mesh.stop())
      cleanup.unshift(() => blind.stop())
      blind.attach(mesh)
      clocks.attach(mesh)
      cleanup.unshift(async () => clocks.stop())
      workspace.on('sync:paused', () => blind.pause())
      await PeerSync.attach(workspace, engine, mesh, self)
      mesh.on('connected', ({ peerId }) => workspace.emitEvent('sync:connected', { peerId }))
      // A member added here (this device invited it) opens its session itself once welcomed;
      // the inviter of a join in progress is synced with by join() (syncWith).
      workspace.on('device:joined', ({ peerId, by }) => {
        if (by !== self && peerId !== joining.inviter) mesh.memberAdded(peerId)
      })
      mesh.on('offline', (e) => workspace.emitEvent('sync:offline', e))
      engine.on('update', (e) => workspace.emitEvent('sync:update', e))
      // This device revoked: a member's signed notice it verified (its own record in `_revoked`,
      // if sync brought it, changes nothing: the members cut it off, and the first it dials again
      // tells it). It is kept on record, and from then on the mesh dials no one (also after a restart).
      const revokedSelf = async (r: SelfRevocation): Promise<void> => {
        if (!(await workspace.markRevokedSelf(r))) return
        // The revocation is on record (markRevokedSelf); the audit entry is the log of it.
        await workspace
          .audit('device-revoked', `this device learned it was revoked${r.toldBy === undefined ? '' : ` (told by …${r.toldBy.slice(-8)})`}`, self)
          .catch((err: unknown) => log('cannot write the device-revoked audit entry', err))
        mesh.retire(revokedMessage(r))
      }
      const known = await workspace.selfRevocation()
      if (known !== undefined) mesh.retire(revokedMessage(known))
      engine.on('revoked', ({ peerId, notice }) => {
        void (async () => {
          const why = await checkRevokedNotice(notice, {
            workspaceId: workspace.workspaceId,
            self,
            from: peerId,
            isTrustedMember: (id) => workspace.isTrusted(id),
          })
          if (why !== undefined) {
            await workspace.audit('sync-error', `ignored a REVOKED notice: ${why}`, peerId)
            return
          }
          const reason = notice.reason === '' ? {} : { reason: notice.reason }
          await revokedSelf({ revokedBy: notice.revokedBy, revokedAt: notice.revokedAt, ...reason, toldBy: peerId, learnedAt: Date.now() })
        })().catch((err: unknown) => log(`cannot handle the REVOKED notice from ${peerId}`, err))
      })
      // Trust: a revoked device is cut off the moment the revocation arrives; refusals,
      // pairing failures and sync errors go to the audit log (refusals of an address: the first
      // in a minute, then a summary; see StrangerAudit).
      workspace.on('device:revoked', ({ peerId, by }) => {
        void mesh.hangUp(peerId).then(() => {
          if (by !== self || keys === undefined) return
          // A member missed now pulls the keys when it next connects.
          for (const id of mesh.connectedPeers())
            if (!workspace.isUntrusted(id)) void pushKeys(mesh.node, id, keys.export(0)).catch((err: unknown) => log(`cannot push keys to ${id}`, err))
        })
      })
      mesh.on('connected', ({ peerId }) => {
        // Keys are pulled from trusted members only, and an untrusted peer (the VPS) pulls none.
        if (workspace.isUntrusted(peerId) || workspace.isUntrusted(self)) return
        void pullKeys(mesh.node, peerId, keyHolder).catch((err: unknown) => log(`cannot pull keys from ${peerId}`, err))
      })
      mesh.on('refused', ({ peerId, reason, address }) => strangers.connectionRefused(address, peerId, reason))
      engine.on('offline', ({ peerId, error }) => {
        if (error !== undefined)
          void workspace
            .audit('sync-error', `${error.code}: ${error.message}`, peerId)
            .catch((err: unknown) => log(`cannot write the sync-error audit entry for ${peerId} (${error.code})`, err))
      })
      invites.on('pending', (e) => workspace.emitEvent('pairing:pending', e))
      // A device just admitted asks for everything next: its copy is read while the pairing ends.
      invites.on('used', ({ deviceId }) => engine.expectNewDevice(deviceId))
      invites.on(
        'refused',
        ({ deviceId, code, message }) =>
          void workspace
            .audit('pairing-refused', `${code}: ${message}`, deviceId)
            .catch((err: unknown) => log(`cannot write the pairing-refused audit entry for ${deviceId} (${code})`, err)),
      )
      await workspace.revocations()
      for (const [event, listener] of Object.entries(options.listeners ?? {})) workspace.on(event as keyof WorkspaceEvents, listener as never)
      await mesh.start()
      // Make every stored collection known to the engine, so live updates flow from the start.
      // One that does not load is not synced, and reports its error when it is used.
      for (const name of workspace.collectionNames()) await engine.doc(name).catch((err: unknown) => log(`cannot load collection ${name} at start`, err))
      let control: ControlServer | undefined
      if (options.control ?? true) {
        control = await ControlServer.listen(workspace, paths.socket)
        cleanup.unshift(() => (control as ControlServer).close())
      }
      const startedAt = Date.now()
      const peer = new Peer(workspace, engine, mesh, invites, control, paths, startedAt, bootstrap, blind, joining, strangers, clocks)
      control?.setPeer(peer)
      peer.folders = await wireFolders(workspace, paths, control) // shared folders (kitsync folder)
      const http = httpPortFor(options.http, config?.http)
      if (control !== undefined && http !== undefined) {
        peer.http = await PeerHttp.start({ home: paths.home, ...http, control, source: metricsSourceOf(peer) })
        cleanup.unshift(() => (peer.http as PeerHttp).close())
      }
      await writeFile(paths.pid, `${process.pid}\n`, { mode: 0o600 })
      workspace.peerStarted(process.pid, startedAt)
      return peer
    } catch (err) {
      // The start's own error is the one to report.
      for (const fn of cleanup) await fn().catch((cleanupErr: unknown) => log('cleaning up after a failed start', cleanupErr))
      throw err
    }
  }

  get deviceId(): string {
    return this.mesh.peerId
  }

  /** Addresses worth putting in a token: the ones we listen on, without wildcard ones. */
  shareableAddresses(): string[] {
    return this.mesh.listenAddresses().map((a) => a.replace(/\/p2p\/[^/]+$/, ''))
  }

  async createInvite(ttlMs?: number, options: { confirm?: boolean; untrusted?: boolean } = {}): Promise<Invite> {
    if (this.mesh.retired !== undefined) throw new KitsyncError('DEVICE_REVOKED', this.mesh.retired)
    // The device that invites first founds the membership with itself in it.
    await this.workspace.keys?.ensure()
    if (!(await this.workspace.isMember(this.deviceId))) {
      await this.workspace.addMember(this.deviceId, { name: hostname(), addedBy: this.deviceId, addedAt: Date.now() })
    }
    return this.invites.create({
      addresses: this.shareableAddresses(),
      ...(ttlMs === undefined ? {} : { ttlMs }),
      ...(options.confirm === true ? { confirm: true } : {}),
      ...(options.untrusted === true ? { untrusted: true } : {}),
    })
  }

  /**
   * Join the workspace of a token: pair with the inviter, adopt the workspace, copy it.
   * `signal` aborted before the welcome arrived: rejects with ABORTED and the home is left as a
   * failed join leaves it (nothing adopted). Aborted after it, the device has joined: only the
   * wait for the first exchange ends, and the result says `caughtUp: false`.
   */
  async join(tokenText: string, name: string, options: { waitMs?: number; onCode?: (code: string) => void; signal?: AbortSignal } = {}): Promise<JoinResult> {
    const { signal } = options
    throwIfAborted(signal, 'join')
    const token = decodeToken(tokenText)
    if (token.inviter === this.deviceId) throw new KitsyncError('TOKEN_REFUSED', 'this token was issued by this device')
    // Collections and memberships merge like any data: a home that holds records of its own,
    // or shares its workspace with others, would carry them into the new one and to every
    // member. It needs a fresh home folder, or `join --replace` (a backup export, then a clean home).
    if (token.workspaceId !== this.workspace.workspaceId) {
      const held = await heldData(this.workspace, this.deviceId)
      if (held.records > 0 || held.devices > 0) throw workspaceExists(this.paths.home, await this.workspace.info(), held)
    }
    // A device of this workspace that was revoked cannot come back on the same identity. It may
    // learn it only now: the inviter's sync protocol tells it while it pairs, and it then closes
    // every connection, the pairing stream too, so that failure is its revocation.
    const revoked = async (): Promise<boolean> => token.workspaceId === this.workspace.workspaceId && (await this.workspace.selfRevocation()) !== undefined
    const revokedError = (cause?: unknown): KitsyncError =>
      new KitsyncError('DEVICE_REVOKED', 'this device was revoked; it can come back only with a new identity (a new home folder) and a new pairing', { cause })
    if (await revoked()) throw revokedError()
    let welcome: Awaited<ReturnType<typeof joinWithToken>>
    try {
      welcome = await joinWithToken(this.mesh.node, token, name, options.onCode, { signal })
    } catch (err) {
      if (!isKitsyncError(err, 'DEVICE_REVOKED') && (await revoked())) throw revokedError(err)
      throw err
    }
    await this.workspace.adoptWorkspace(welcome.workspaceId, welcome.name)
    // The keys first: learning the members opens sessions at once (with a VPS already
    // connected, the blind store session too, which needs a key).
    await this.workspace.keys?.merge(welcome.keys)
    this.joining.inviter = token.inviter
    try {
      await this.workspace.applyInternalUpdate(MEMBERS_COLLECTION, welcome.members, 'pairing')
    } finally {
      this.joining.inviter = undefined
    }
    for (const id of this.mesh.connectedPeers()) this.blind.connect(id)
    // Remember the inviter's addresses, so this device finds it again after a restart.
    await rememberBootstrap(
      this.paths,
      token.addresses.map((a) => `${a}/p2p/${token.inviter}`),
    )
    const caughtUp = await this.syncWith(token.inviter, options.waitMs ?? 60_000, signal)
    return { workspaceId: welcome.workspaceId, name: welcome.name, inviter: token.inviter, caughtUp }
  }

  /**
   * Open a sync session with a member and wait until every collection it has was exchanged
   * once; false when that did not happen within `waitMs`.
   *
   * The member may open a session at the same moment (an inviter that saw this device's
   * connection only after admitting it, or `kitsync pair` in the foreground): of two streams
   * opened at once one is closed, and the session on the other carries the exchange, however
   * long it takes to open under load. So a stream of ours that failed is not the end: the
   * exchange is waited for on whichever session the two keep, or on the next connection. A
   * session still in its first exchange is waited for too, not closed and opened again.
   * `signal` aborted: false at once (the wait ends; the session, if any, goes on).
   */
  async syncWith(peerId: string, waitMs: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted === true) return false
    const done = new Promise<boolean>((resolve) => {
      const finish = (caughtUp: boolean): void => {
        clearTimeout(timer)
        off()
        signal?.removeEventListener('abort', onAbort)
        resolve(caughtUp)
      }
      const onAbort = (): void => finish(false)
      const timer = setTimeout(onAbort, waitMs)
      const off = this.engine.on('caught-up', (e) => {
        if (e.peerId === peerId) finish(true)
      })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
    const current = this.engine.sessionsWith(peerId)[0]
    // A stream of ours that fails is not the end (see above): `done` waits all the same.
    if (current === undefined || current.isCaughtUp)
      await this.mesh
        .openSyncTo(peerId, undefined, { signal })
        .catch((err: unknown) => log(`cannot open a sync session with ${peerId}; waiting for one all the same`, err))
    return done
  }

  async networkStatus(): Promise<NetworkStatus> {
    return {
      peerId: this.deviceId,
      listen: this.mesh.listenAddresses(),
      discovery: this.mesh.discovery,
      bootstrap: this.bootstrap,
      connected: this.mesh.connectedPeers().length,
      refusedConnections: this.mesh.refusedCount,
      keyEpoch: this.workspace.keys?.epoch ?? 0,
      devices: await this.devices(),
      clocks: this.clocks.connected(),
      relays: this.mesh.relays(),
      blindStore: await this.blind.status(),
    }
  }

  /** Every member with what this peer knows of it: connected, disconnected or never seen. */
  async devices(): Promise<DeviceView[]> {
    const members = await this.workspace.members()
    const known = new Map(this.mesh.knownPeers().map((p) => [p.peerId, p]))
    const revoked = new Set<string>()
    for (const id of Object.keys(members)) if (await this.workspace.isRevoked(id)) revoked.add(id)
    return Object.entries(members).map(([id, m]): DeviceView => {
      const k = known.get(id)
      const state = revoked.has(id) ? 'revoked' : id === this.deviceId ? 'this device' : (k?.state ?? 'never seen')
      const view: DeviceView = { peerId: id, ...m, state }
      if (k?.address !== undefined) view.address = k.address
      if (k?.lastSeen !== undefined) view.lastSeen = k.lastSeen
      if (k?.lastSync !== undefined) view.lastSync = k.lastSync
      if (k?.session !== undefined && k.state === 'connected') {
        view.bytesIn = k.session.bytesIn
        view.bytesOut = k.session.bytesOut
        view.unsentBytes = k.session.unsentBytes
      }
      return view
    })
  }

  /** Stop serving, close the mesh, write out everything pending, release the store. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.http?.close()
      await this.control?.close()
      // Stopping goes on: what is left to write is the workspace's, closed below.
      await this.blind.stop().catch((err: unknown) => log('stopping the blind store wiring', err))
      await this.mesh.stop().catch((err: unknown) => log('stopping the mesh', err))
      this.clocks.stop()
      await this.strangers.stop()
      await this.workspace.close()
      await rm(this.paths.pid, { force: true })
    })()
    return this.stopping
  }
}

/** What a revoked device says to commands that need the network (DEVICE_REVOKED). */
function revokedMessage(r: SelfRevocation): string {
  const reason = r.reason === undefined ? '' : ` (${r.reason})`
  return `this device was revoked by …${r.revokedBy.slice(-8)} at ${new Date(r.revokedAt).toISOString()}${reason}; the other devices refuse it. It can come back only with a new identity (a new home folder) and a new pairing`
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = parseInt(await readFile(file, 'utf8'), 10)
    return Number.isSafeInteger(pid) ? pid : undefined
  } catch {
    return undefined // no pid file (or unreadable): the message names no pid
  }
}
