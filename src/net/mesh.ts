import type { Connection, Libp2p, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { throwIfAborted } from '../core/abort.js'
import { TypedEmitter } from '../core/emitter.js'
import { KitsyncError } from '../core/errors.js'
import { OLD_SYNC_PROTOCOL_IDS, SYNC_PROTOCOL_ID } from '../protocol/sync-frames.js'
import type { SyncEngine } from '../sync/sync-engine.js'
import { BackoffScheduler, systemClock, type MeshClock } from './backoff.js'
import { dialSignal } from './dial-signal.js'
import { createMeshNode, DEFAULT_LISTEN, discoveryState, identifyLater, type DiscoveryState } from './libp2p-node.js'
import { PeerBook, type KnownPeer } from './peer-book.js'
import type { PrivateMdns } from './private-mdns.js'
import { RelayDialer } from './relay-dialer.js'
import { SyncSessions, type MeshEvents } from './sync-sessions.js'
import { refuseOldSync } from './sync-version.js'

export interface MeshOptions {
  privateKey: PrivateKey
  engine: SyncEngine
  /** Is this device a member of the workspace? Decides who may open the sync protocol. */
  isMember: (deviceId: string) => Promise<boolean>
  listen?: string[]
  bootstrap?: string[]
  mdns?: boolean
  /** Workspace keys for private mDNS (current epoch first); empty until the device has one. */
  discoveryKeys?: () => Uint8Array[]
  /** Extra protocol handlers (pairing). */
  handlers?: Record<string, (stream: Stream, connection: Connection) => void | Promise<void>>
  /** Serve as a circuit relay v2 for members (the VPS, `peer start --relay`). */
  relay?: boolean
  /** Every member's device id: dialled through a relay when there is no direct connection. */
  members?: () => Promise<string[]>
  /**
   * What a refused device is told (an encoded sync frame: a signed REVOKED for a device in
   * `_revoked`), or undefined to tell it nothing (a stranger).
   */
  refusalNotice?: (deviceId: string) => Promise<Uint8Array | undefined>
  /** The clock (last seen) and chance (backoff jitter): Date.now and Math.random unless given. */
  now?: () => number
  random?: () => number
}

/**
 * The libp2p side of a peer: the node (libp2p-node.ts: TCP + Noise + Yamux, identify and ping),
 * mDNS and bootstrap discovery, redials with backoff, dials through relays (relay-dialer.ts),
 * the peer book, and the sync protocol handler that lets members only reach the engine
 * (sync-sessions.ts).
 */
export class Mesh extends TypedEmitter<MeshEvents> {
  readonly node: Libp2p
  readonly discovery: DiscoveryState
  private readonly isMember: (id: string) => Promise<boolean>
  private readonly sync: SyncSessions
  private readonly book: PeerBook
  private readonly bootstrapAddrs: Multiaddr[]
  private readonly listen: string[]
  /** Dials to try again, by address, peer id or `relay:<peer id>`; a dial that connects starts its key over. */
  private readonly redials: BackoffScheduler
  private readonly relayDialer: RelayDialer
  private stopped = false
  private lan: PrivateMdns | undefined
  private readonly discoveryKeys: () => Uint8Array[]
  refusedCount = 0
  /** Set once this device knows it was revoked: why (see retire). */
  retired: string | undefined
  /** Sync paused (kitsync sync pause): no dial, no session, sync streams refused, until resume. */
  paused = false

  private constructor(node: Libp2p, options: MeshOptions, discovery: DiscoveryState) {
    super()
    this.node = node
    this.isMember = options.isMember
    this.discovery = discovery
    this.bootstrapAddrs = (options.bootstrap ?? []).map((a) => multiaddr(a))
    this.listen = options.listen ?? DEFAULT_LISTEN
    this.discoveryKeys = options.discoveryKeys ?? (() => [])
    const clock: MeshClock = { now: options.now ?? systemClock.now, random: options.random ?? systemClock.random, after: systemClock.after }
    this.book = new PeerBook(clock.now)
    const active = (): boolean => !this.stopped && this.retired === undefined && !this.paused
    this.redials = new BackoffScheduler({ clock, active, resetOnSuccess: true })
    this.sync = new SyncSessions({
      node,
      engine: options.engine,
      self: this.peerId,
      isMember: this.isMember,
      refusalNotice: options.refusalNotice ?? (async () => undefined),
      events: this,
      touch: (id, state) => this.touch(id, state),
      refused: () => void this.refusedCount++,
      stopped: () => this.stopped,
      retired: () => this.retired,
      paused: () => this.paused,
      clock,
    })
    this.relayDialer = new RelayDialer({
      node,
      self: this.peerId,
      isMember: this.isMember,
      members: options.members ?? (async () => []),
      active,
      redials: this.redials,
    })
  }

  /**
   * Build the node without starting it: handlers and listeners are in place before the first
   * connection or discovery can happen, and the owner can subscribe to the mesh's events.
   */
  static async create(options: MeshOptions): Promise<Mesh> {
    const discovery = await discoveryState(options.mdns ?? true)
    const node = await createMeshNode({
      privateKey: options.privateKey,
      listen: options.listen ?? DEFAULT_LISTEN,
      relay: options.relay === true,
      isMember: options.isMember,
    })
    const mesh = new Mesh(node, options, discovery)
    // Every kitsync protocol may run over a relayed (limited) connection.
    await node.handle(SYNC_PROTOCOL_ID, (stream, connection) => mesh.sync.inbound(stream, connection), {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
      runOnLimitedConnection: true,
    })
    // A device of an earlier version is told why it is refused (net/sync-version.ts).
    for (const old of OLD_SYNC_PROTOCOL_IDS) {
      await node.handle(old, (stream, connection) => refuseOldSync(stream, connection, options.isMember), { runOnLimitedConnection: true })
    }
    for (const [protocol, handler] of Object.entries(options.handlers ?? {})) {
      await node.handle(
        protocol,
        async (stream, connection) => {
          await handler(stream, connection)
        },
        { runOnLimitedConnection: true },
      )
    }
    node.addEventListener('peer:identify', (evt) => mesh.relayDialer.identified(evt.detail))
    node.addEventListener('connection:open', (evt) => identifyLater(node, evt.detail, () => !mesh.stopped))
    node.addEventListener('peer:connect', (evt) => void mesh.onConnect(evt.detail))
    node.addEventListener('peer:disconnect', (evt) => mesh.onDisconnect(evt.detail))
    node.addEventListener('peer:discovery', (evt) => void mesh.onDiscovery(evt.detail.id))
    return mesh
  }

  /** Listen, start discovery and dial the bootstrap addresses. */
  async start(): Promise<void> {
    try {
      await this.node.start()
    } catch (err) {
      const message = (err as Error).message
      // libp2p reports each failed address as a line `  ADDR: Error: listen EADDRINUSE: ...`.
      const inUse = [...message.matchAll(/^\s*(\/\S+): .*\bEADDRINUSE\b/gm)].map((m) => m[1] as string)
      if (inUse.length > 0) {
        throw new KitsyncError(
          'PORT_IN_USE',
          `cannot listen on ${inUse.join(', ')}: the port is in use by another process (another kitsync peer?); stop it or choose another port with --listen`,
          { cause: err, details: { addresses: inUse } },
        )
      }
      throw new KitsyncError('INVALID_ARGUMENT', `cannot listen on ${this.listen.join(', ')}: ${message}`, { cause: err })
    }
    if (this.retired !== undefined) return
    if (!this.paused) for (const addr of this.bootstrapAddrs) this.dialAddress(addr)
    if (this.discovery.mdns === 'on') {
      const { PrivateMdns } = await import('./private-mdns.js')
      if (this.stopped) return
      this.lan = new PrivateMdns({
        keys: this.discoveryKeys,
        self: () => ({ peerId: this.peerId, addresses: this.listenAddresses().map((a) => a.replace(/\/p2p\/[^/]+$/, '')) }),
        onPeer: (found) => void this.found(found.peerId, found.addresses),
      })
    }
  }

  private async found(id: string, addresses: string[]): Promise<void> {
    const peer = peerIdFromString(id)
    await this.node.peerStore.merge(peer, { multiaddrs: addresses.map((a) => multiaddr(a)) }).catch(() => undefined) // the dial below still has the addresses
    await this.onDiscovery(peer)
  }

  get peerId(): string {
    return this.node.peerId.toString()
  }

  listenAddresses(): string[] {
    return this.node.getMultiaddrs().map((a) => a.toString())
  }

  connectedPeers(): string[] {
    return this.sync.peers()
  }

  /** Members connected directly that serve circuit relay (kitsync doctor checks the reservation on each). */
  relays(): string[] {
    return this.relayDialer.known()
  }

  knownPeers(): KnownPeer[] {
    return this.book.list((id) => this.sync.statsOf(id))
  }

  /** Dial a member by id (its addresses from discovery) or an address; resolves once connected. Aborted: rejects with ABORTED. */
  async dial(target: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal, 'the dial')
    const signal = dialSignal(options.signal)
    try {
      await this.node.dial(target.startsWith('/') ? multiaddr(target) : peerIdFromString(target), signal === undefined ? {} : { signal })
    } catch (err) {
      throwIfAborted(options.signal, 'the dial')
      throw err
    }
  }

  /** Force a fresh exchange with every connected member: close sessions and open new ones. */
  async resync(): Promise<void> {
    await this.sync.resync()
  }

  /** Dial every address and device waiting for a redial now, skipping the backoff (sync now, reset). */
  redialNow(): void {
    this.redials.runNow()
  }

  /** Forget last seen, last sync and addresses of peers, and the redial backoff (kitsync reset). */
  forgetPeers(): void {
    this.book.clear()
    for (const id of this.sync.peers()) this.touch(id, 'connected')
    this.redialNow()
  }

  /** Drop a device at once (it was revoked): close its sync session and every connection to it, counted as refused. */
  async hangUp(peerId: string): Promise<void> {
    if (this.node.getConnections(peerIdFromString(peerId)).length > 0) this.refusedCount++
    this.sync.drop(peerId)
    this.redials.cancel(peerId) // a wait already running would dial the revoked device again
    await this.node.hangUp(peerIdFromString(peerId)).catch(() => undefined) // already gone: nothing to hang up
  }

  /**
   * This device was revoked (a member told it so): dial no one any more, end every session and
   * connection, answer no sync stream. For the life of the process; the peer calls it again at
   * start while the revocation is on record.
   */
  retire(why: string): void {
    this.retired = why
    this.lan?.stop()
    this.lan = undefined
    this.redials.cancelAll()
    this.sync.closeAll()
    this.book.disconnectAll()
    for (const connection of this.node.getConnections()) void connection.close().catch(() => connection.abort(new Error(why)))
  }

  /**
   * Pause sync: end every session, dial no one, refuse sync streams (the other device retries
   * with its backoff). Connections stay open (the relay, pairing and the blind store use them).
   */
  pause(): void {
    if (this.paused) return
    this.paused = true
    this.redials.cancelAll()
    this.sync.closeAll()
  }

  /**
   * End the pause and dial the bootstrap addresses. The sessions are opened by the caller, one
   * per device (PeerSync.resume runs a sync now): opening them here as well gave two sessions
   * opened by this device at once, and the two sides could keep different ones (see
   * SyncSessions.attach), leaving the other device to open one after its retry backoff.
   */
  resume(): void {
    if (!this.paused) return
    this.paused = false
    if (this.stopped || this.retired !== undefined) return
    for (const addr of this.bootstrapAddrs) this.dialAddress(addr)
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.lan?.stop()
    this.redials.cancelAll()
    this.sync.closeAll()
    await this.node.stop()
  }

  private async onConnect(peer: PeerId): Promise<void> {
    const id = peer.toString()
    this.redials.forget(id)
    // Only members are listed as connected. A device that is not one yet (pairing) is listed
    // once its session opens; a revoked one is not told, keeps redialing, and must not show up
    // as connected again (its sync streams are refused; no data flows).
    if (this.retired !== undefined || !(await this.isMember(id).catch(() => false))) return // no answer: treated as a stranger
    this.touch(id, 'connected')
    if (this.paused) return // its session opens on resume
    await this.sync.connected(peer)
  }

  private onDisconnect(peer: PeerId): void {
    const id = peer.toString()
    // Only peers listed before (members) are kept in the book: a stranger that connects and
    // goes, under a new PeerId each time, must not grow it.
    if (this.book.has(id)) this.touch(id, 'disconnected')
    // No connection left to open a session on: the redial below takes over.
    this.sync.disconnected(id)
    if (this.stopped) return
    void this.isMember(id).then(
      (member) => {
        if (!member) {
          // Nor libp2p's peer store (it keeps a peer's addresses and protocols for hours).
          if (this.node.getConnections(peer).length === 0) void this.node.peerStore.delete(peer).catch(() => undefined) // a stranger's entry only saves memory; gone already is fine
          return
        }
        this.relayDialer.lost(id)
        this.redials.schedule(id, () => this.node.dial(peer))
      },
      () => undefined,
    )
  }

  private async onDiscovery(peer: PeerId): Promise<void> {
    const id = peer.toString()
    if (this.stopped || this.retired !== undefined || this.paused || this.sync.has(id) || this.node.getConnections(peer).length > 0) return
    if (!(await this.isMember(id).catch(() => false))) return // no answer: treated as a stranger
    await this.node.dial(peer).catch(() => this.redials.schedule(id, () => this.node.dial(peer)))
  }

  private dialAddress(addr: Multiaddr): void {
    this.redials.run(addr.toString(), () => this.node.dial(addr))
  }

  /** A device became a member: open a sync session on a connection already open to it (see SyncSessions.memberAdded). */
  memberAdded(peerId: string): void {
    this.sync.memberAdded(peerId)
  }

  /** Open the sync session with a member now (after it became one, e.g. on joining). Aborted: rejects with ABORTED. */
  async openSyncTo(peerId: string, graceMs = 2000, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.sync.openTo(peerId, graceMs, options.signal)
  }

  private touch(peerId: string, state: KnownPeer['state']): void {
    this.book.touch(peerId, state, this.node.getConnections(peerIdFromString(peerId))[0]?.remoteAddr.toString())
  }
}
