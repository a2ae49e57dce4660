import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify, type Identify } from '@libp2p/identify'
import type { Connection, Libp2p, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { TypedEmitter } from '../core/emitter.js'
import { KitsyncError } from '../core/errors.js'
import { SYNC_PROTOCOL_ID } from '../protocol/sync-frames.js'
import type { SyncEngine } from '../sync/sync-engine.js'
import type { SessionStats, SyncSession } from '../sync/sync-session.js'
import { tunedNoise } from './tuned-noise.js'
import type { PrivateMdns } from './private-mdns.js'
import { StreamLink } from './stream-link.js'

/** The TCP port a peer listens on unless told otherwise. */
export const DEFAULT_PORT = 4771
export const DEFAULT_LISTEN = [`/ip4/0.0.0.0/tcp/${DEFAULT_PORT}`]

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
}

/** How long a refused device gets to read its REVOKED notice before the stream is reset. */
const NOTICE_TIMEOUT_MS = 5000

/**
 * Limits of a relayed connection on a kitsync relay: enough for sync (a large catch-up, hours of
 * live updates), unlike libp2p's 128 KiB / 2 minutes. Past them the relay cuts the connection and
 * the devices dial again. The relay reads the duration in milliseconds (the client in seconds).
 */
export const RELAY_LIMITS = { durationMs: 60 * 60 * 1000, dataBytes: 1n << 30n, maxReservations: 128 } as const
const HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

/**
 * Inbound connection limits. libp2p's defaults (5 new connections a second per IP address, 10
 * in their handshake at once) refuse the sixth device that pairs or connects in the same second
 * from one address: devices behind one NAT reaching the VPS, several devices joining at once
 * (on loopback they all share 127.0.0.1). The socket is reset and the joiner saw
 * 'cannot reach the inviting device: read ECONNRESET'. These are still bounded: one host may
 * open 32 connections a second, 64 may be in their handshake (each has libp2p's 10 s deadline).
 */
export const INBOUND_LIMITS = { inboundConnectionThreshold: 32, maxIncomingPendingConnections: 64 } as const

export type DiscoveryState = { mdns: 'off' } | { mdns: 'on' } | { mdns: 'unavailable'; reason: string }

export interface KnownPeer {
  peerId: string
  state: 'connected' | 'disconnected'
  address?: string
  lastSeen?: number
  lastSync?: number
  session?: SessionStats
}

export interface MeshEvents {
  connected: { peerId: string }
  offline: { peerId: string; reason?: { code: string; message: string } }
  /** A sync stream refused; `address` is the connection's remote multiaddr. */
  refused: { peerId: string; reason: string; address: string }
}

const MAX_BACKOFF_MS = 30_000

/** Wait before the attempt-th retry of a dial or a session: doubling from 0.5 s up to MAX_BACKOFF_MS, jittered by ±25%. */
function backoffMs(attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5)
}

/**
 * How long after a direct connection opens its peer is identified (see Mesh.identifyLater).
 * Long enough for a join or a first sync exchange to be under way without it; short enough
 * that a member serving circuit relay (the VPS) is known as one a second after connecting.
 */
export const IDENTIFY_DELAY_MS = 1000

/**
 * The libp2p side of a peer: TCP + Noise + Yamux, identify and ping, mDNS and bootstrap
 * discovery, and the sync protocol handler that lets members only reach the engine.
 */
export class Mesh extends TypedEmitter<MeshEvents> {
  readonly node: Libp2p
  readonly discovery: DiscoveryState
  private readonly engine: SyncEngine
  private readonly isMember: (id: string) => Promise<boolean>
  private readonly sessions = new Map<string, { session: SyncSession; initiator: string }>()
  /** Peers a sync stream is being opened to. */
  private readonly opening = new Set<string>()
  private readonly book = new Map<string, KnownPeer>()
  private readonly bootstrapAddrs: Multiaddr[]
  private readonly listen: string[]
  private readonly redials = new Map<string, { attempt: number; timer?: NodeJS.Timeout; dial?: () => Promise<unknown> }>()
  /** Sync sessions to open again on a connection that stays open (see retrySession), by peer id. */
  private readonly sessionRetries = new Map<string, { attempt: number; timer?: NodeJS.Timeout }>()
  private stopped = false
  private lan: PrivateMdns | undefined
  private readonly discoveryKeys: () => Uint8Array[]
  private readonly members: () => Promise<string[]>
  /** Relays (members that serve circuit relay v2) by peer id: their direct address. */
  private readonly relays = new Map<string, string>()
  refusedCount = 0
  /** Set once this device knows it was revoked: why (see retire). */
  retired: string | undefined
  private readonly refusalNotice: (id: string) => Promise<Uint8Array | undefined>

  private constructor(node: Libp2p, options: MeshOptions, discovery: DiscoveryState) {
    super()
    this.node = node
    this.engine = options.engine
    this.isMember = options.isMember
    this.discovery = discovery
    this.bootstrapAddrs = (options.bootstrap ?? []).map((a) => multiaddr(a))
    this.listen = options.listen ?? DEFAULT_LISTEN
    this.discoveryKeys = options.discoveryKeys ?? (() => [])
    this.members = options.members ?? (async () => [])
    this.refusalNotice = options.refusalNotice ?? (async () => undefined)
  }

  /**
   * Build the node without starting it: handlers and listeners are in place before the first
   * connection or discovery can happen, and the owner can subscribe to the mesh's events.
   */
  static async create(options: MeshOptions): Promise<Mesh> {
    let discovery: DiscoveryState = { mdns: 'off' }
    if (options.mdns ?? true) {
      // mDNS modules (multicast-dns, dgram) load only when mDNS is on (not with --no-mdns, the VPS).
      const { multicastUnavailable } = await import('./multicast-route.js')
      const reason = await multicastUnavailable()
      discovery = reason === undefined ? { mdns: 'on' } : { mdns: 'unavailable', reason: `${reason}; peers can still be reached with --bootstrap` }
    }
    const isMember = options.isMember
    // A device also listens through any relay it connects to (`/p2p-circuit`: reservations are
    // made on members that serve circuit relay, e.g. the VPS), and upgrades a relayed connection
    // to a direct one by hole punching (DCUtR) when the networks allow it.
    const listen = [...(options.listen ?? DEFAULT_LISTEN), ...(options.relay === true ? [] : ['/p2p-circuit'])]
    const node = await createLibp2p({
      start: false,
      privateKey: options.privateKey,
      addresses: { listen },
      transports: [tcp(), circuitRelayTransport()],
      connectionEncrypters: [tunedNoise()],
      streamMuxers: [yamux()],
      connectionManager: { ...INBOUND_LIMITS },
      peerDiscovery: [],
      // Only members get a reservation on our relay (and only if we are one).
      connectionGater: { denyInboundRelayReservation: async (peer) => !(await isMember(peer.toString()).catch(() => false)) },
      services: {
        // Not at once on every connection: see Mesh.identifyLater.
        identify: identify({ runOnConnectionOpen: false }),
        ping: ping(),
        dcutr: dcutr(),
        ...(options.relay === true
          ? { relay: circuitRelayServer({ reservations: { maxReservations: RELAY_LIMITS.maxReservations, defaultDurationLimit: RELAY_LIMITS.durationMs, defaultDataLimit: RELAY_LIMITS.dataBytes } }) }
          : {}),
      },
    })
    const mesh = new Mesh(node, options, discovery)
    // Every kitsync protocol may run over a relayed (limited) connection.
    await node.handle(SYNC_PROTOCOL_ID, (stream, connection) => mesh.inbound(stream, connection), { maxInboundStreams: 4, maxOutboundStreams: 4, runOnLimitedConnection: true })
    for (const [protocol, handler] of Object.entries(options.handlers ?? {})) {
      await node.handle(
        protocol,
        async (stream, connection) => {
          await handler(stream, connection)
        },
        { runOnLimitedConnection: true },
      )
    }
    node.addEventListener('peer:identify', (evt) => {
      if (!evt.detail.protocols.includes(HOP_PROTOCOL) || evt.detail.connection.remoteAddr.toString().includes('/p2p-circuit')) return
      void mesh.foundRelay(evt.detail.peerId.toString(), evt.detail.connection.remoteAddr.toString())
    })
    node.addEventListener('connection:open', (evt) => mesh.identifyLater(evt.detail))
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
      throw new KitsyncError('INVALID_ARGUMENT', `cannot listen on ${this.listen.join(', ')}: ${(err as Error).message}`, { cause: err })
    }
    if (this.retired !== undefined) return
    for (const addr of this.bootstrapAddrs) this.dialAddress(addr)
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
    await this.node.peerStore.merge(peer, { multiaddrs: addresses.map((a) => multiaddr(a)) }).catch(() => undefined)
    await this.onDiscovery(peer)
  }

  get peerId(): string {
    return this.node.peerId.toString()
  }

  listenAddresses(): string[] {
    return this.node.getMultiaddrs().map((a) => a.toString())
  }

  connectedPeers(): string[] {
    return [...this.sessions.keys()]
  }

  knownPeers(): KnownPeer[] {
    for (const [id, { session }] of this.sessions) {
      const entry = this.book.get(id)
      if (entry !== undefined) {
        entry.session = session.getStats()
        if (entry.session.lastSyncAt !== undefined) entry.lastSync = entry.session.lastSyncAt
      }
    }
    return [...this.book.values()].map((p) => ({ ...p }))
  }

  /** Dial a member by id (its addresses from discovery) or an address; resolves once connected. */
  async dial(target: string): Promise<void> {
    await this.node.dial(target.startsWith('/') ? multiaddr(target) : peerIdFromString(target))
  }

  /** Force a fresh exchange with every connected member: close sessions and open new ones. */
  async resync(): Promise<void> {
    // A copy: reopening adds to the map, and a live iteration would visit the new sessions too.
    for (const [id, { session }] of [...this.sessions]) {
      session.close()
      this.sessions.delete(id)
      await this.openSync(peerIdFromString(id)).catch(() => undefined)
    }
  }

  /** Dial every address and device waiting for a redial now, skipping the backoff (sync now, reset). */
  redialNow(): void {
    if (this.stopped || this.retired !== undefined) return
    for (const [key, state] of this.redials) {
      const dial = state.dial
      if (dial === undefined) continue
      clearTimeout(state.timer)
      state.timer = undefined
      state.attempt = 0
      dial().then(
        () => this.redials.delete(key),
        () => this.scheduleRedial(key, dial),
      )
    }
  }

  /** Forget last seen, last sync and addresses of peers, and the redial backoff (kitsync reset). */
  forgetPeers(): void {
    this.book.clear()
    for (const id of this.sessions.keys()) this.touch(id, 'connected')
    this.redialNow()
  }

  /** Drop a device at once (it was revoked): close its sync session and every connection to it, counted as refused. */
  async hangUp(peerId: string): Promise<void> {
    if (this.node.getConnections(peerIdFromString(peerId)).length > 0) this.refusedCount++
    const entry = this.sessions.get(peerId)
    this.sessions.delete(peerId)
    entry?.session.close()
    this.redials.delete(peerId)
    this.forgetSessionRetry(peerId)
    await this.node.hangUp(peerIdFromString(peerId)).catch(() => undefined)
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
    for (const r of this.redials.values()) clearTimeout(r.timer)
    this.redials.clear()
    for (const r of this.sessionRetries.values()) clearTimeout(r.timer)
    this.sessionRetries.clear()
    for (const { session } of this.sessions.values()) session.close()
    this.sessions.clear()
    // No member is synced with any more, whatever connection is still open.
    for (const entry of this.book.values()) entry.state = 'disconnected'
    for (const connection of this.node.getConnections()) void connection.close().catch(() => connection.abort(new Error(why)))
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.lan?.stop()
    for (const r of this.redials.values()) clearTimeout(r.timer)
    for (const r of this.sessionRetries.values()) clearTimeout(r.timer)
    for (const { session } of this.sessions.values()) session.close()
    this.sessions.clear()
    await this.node.stop()
  }

  /** A member that relays: reach every member we are not connected to through it. */
  private async foundRelay(relay: string, address: string): Promise<void> {
    if (this.stopped || this.retired !== undefined || !(await this.isMember(relay).catch(() => false))) return
    this.relays.set(relay, address.replace(/\/p2p\/[^/]+$/, ''))
    for (const id of await this.members().catch(() => [])) this.dialThroughRelays(id)
  }

  /** Dial a member through the relays we know (until a connection to it exists). */
  private dialThroughRelays(id: string): void {
    if (this.stopped || this.retired !== undefined || id === this.peerId || this.relays.has(id) || this.relays.size === 0) return
    const peer = peerIdFromString(id)
    if (this.node.getConnections(peer).length > 0) return
    const dial = async (): Promise<void> => {
      if (this.node.getConnections(peer).length > 0) return
      let last: unknown
      for (const [relay, address] of this.relays) {
        try {
          await this.node.dial(multiaddr(`${address}/p2p/${relay}/p2p-circuit/p2p/${id}`))
          return
        } catch (err) {
          last = err
        }
      }
      throw last
    }
    dial().catch(() => this.scheduleRedial(`relay:${id}`, dial))
  }

  /**
   * Identify a connection's peer (its listen addresses and protocols: how this device learns
   * that a member serves circuit relay, and what hole punching needs) IDENTIFY_DELAY_MS after
   * the connection opened; a relayed connection at once, for hole punching. libp2p's default,
   * at once on every connection, put the identify exchange of both sides (a signed peer record
   * each, peer store updates) between the Noise handshake and the pairing or the first sync
   * exchange: on a join of a 10 MiB workspace the session's hello came 8-11 ms later and the
   * caught-up copy 13-29 ms later (catchUp.10MB, alternating runs of 7 joins each).
   */
  identifyLater(connection: Connection): void {
    const run = (): void => {
      if (this.stopped || connection.status !== 'open') return
      ;(this.node.services as { identify: Identify }).identify.identify(connection).catch(() => undefined)
    }
    if (!connection.direct || connection.limits !== undefined) return run()
    setTimeout(run, IDENTIFY_DELAY_MS).unref()
  }

  private async onConnect(peer: PeerId): Promise<void> {
    const id = peer.toString()
    this.redials.delete(id)
    // Only members are listed as connected. A device that is not one yet (pairing) is listed
    // once its session opens; a revoked one is not told, keeps redialing, and must not show up
    // as connected again (its sync streams are refused; no data flows).
    if (this.retired !== undefined || !(await this.isMember(id).catch(() => false))) return
    this.touch(id, 'connected')
    if (this.stopped || this.sessions.has(id)) return
    await this.openSync(peer).catch(() => this.retrySession(id))
  }

  private onDisconnect(peer: PeerId): void {
    const id = peer.toString()
    // Only peers listed before (members) are kept in the book: a stranger that connects and
    // goes, under a new PeerId each time, must not grow it.
    if (this.book.has(id)) this.touch(id, 'disconnected')
    // No connection left to open a session on: the redial below takes over.
    this.forgetSessionRetry(id)
    if (this.stopped) return
    void this.isMember(id).then((member) => {
      if (!member) {
        // Nor libp2p's peer store (it keeps a peer's addresses and protocols for hours).
        if (this.node.getConnections(peer).length === 0) void this.node.peerStore.delete(peer).catch(() => undefined)
        return
      }
      if (this.relays.has(id)) this.relays.delete(id)
      else if (this.relays.size > 0) this.dialThroughRelays(id)
      this.scheduleRedial(id, () => this.node.dial(peer))
    }, () => undefined)
  }

  private async onDiscovery(peer: PeerId): Promise<void> {
    const id = peer.toString()
    if (this.stopped || this.retired !== undefined || this.sessions.has(id) || this.node.getConnections(peer).length > 0) return
    if (!(await this.isMember(id).catch(() => false))) return
    await this.node.dial(peer).catch(() => this.scheduleRedial(id, () => this.node.dial(peer)))
  }

  private dialAddress(addr: Multiaddr): void {
    const key = addr.toString()
    void this.node.dial(addr).then(
      () => this.redials.delete(key),
      () => this.scheduleRedial(key, () => this.node.dial(addr)),
    )
  }

  private scheduleRedial(key: string, dial: () => Promise<unknown>): void {
    if (this.stopped || this.retired !== undefined) return
    const state = this.redials.get(key) ?? { attempt: 0 }
    state.dial = dial
    if (state.timer !== undefined) return
    const delay = backoffMs(state.attempt)
    state.attempt++
    state.timer = setTimeout(() => {
      state.timer = undefined
      if (this.stopped || this.retired !== undefined) return
      dial().then(
        () => this.redials.delete(key),
        () => this.scheduleRedial(key, dial),
      )
    }, delay)
    state.timer.unref()
    this.redials.set(key, state)
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
    if (this.stopped || peerId === this.peerId || this.sessions.has(peerId) || this.opening.has(peerId)) return
    const peer = peerIdFromString(peerId)
    if (this.node.getConnections(peer).length === 0) return
    void this.isMember(peerId).then(
      (member) => (member && !this.sessions.has(peerId) ? this.openSync(peer) : undefined),
      () => undefined,
    ).catch(() => this.retrySession(peerId))
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
  private retrySession(peerId: string): void {
    if (this.stopped || this.retired !== undefined) return
    const state = this.sessionRetries.get(peerId) ?? { attempt: 0 }
    if (state.timer !== undefined) return
    const delay = backoffMs(state.attempt)
    state.attempt++
    state.timer = setTimeout(() => {
      state.timer = undefined
      void this.reopenSession(peerId)
    }, delay)
    state.timer.unref()
    this.sessionRetries.set(peerId, state)
  }

  private async reopenSession(peerId: string): Promise<void> {
    const peer = peerIdFromString(peerId)
    if (this.stopped || this.sessions.has(peerId) || this.opening.has(peerId) || this.node.getConnections(peer).length === 0) return
    if (!(await this.isMember(peerId).catch(() => false))) return
    await this.openSync(peer).catch(() => this.retrySession(peerId))
  }

  private forgetSessionRetry(peerId: string): void {
    clearTimeout(this.sessionRetries.get(peerId)?.timer)
    this.sessionRetries.delete(peerId)
  }

  /** Open the sync session with a member now (after it became one, e.g. on joining). */
  async openSyncTo(peerId: string, graceMs = 2000): Promise<void> {
    if (this.sessions.has(peerId)) {
      // Re-run the exchange on a fresh session so the caller can wait for it.
      const existing = this.sessions.get(peerId)
      this.sessions.delete(peerId)
      existing?.session.close()
    }
    try {
      await this.openSync(peerIdFromString(peerId))
    } catch (err) {
      // The peer opened a sync stream at the same moment and kept its own (see attach): ours
      // was reset while it was being negotiated. The peer's session serves as well; it may be
      // attached a moment after ours failed.
      if (!(await this.whenSession(peerId, graceMs))) throw err
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
      const off = this.on('connected', (e) => {
        if (e.peerId !== peerId) return
        clearTimeout(timer)
        off()
        resolve(true)
      })
    })
  }

  private async openSync(peer: PeerId): Promise<void> {
    if (this.retired !== undefined) throw new KitsyncError('DEVICE_REVOKED', this.retired)
    const id = peer.toString()
    this.opening.add(id)
    try {
      const stream = await this.node.dialProtocol(peer, SYNC_PROTOCOL_ID, { runOnLimitedConnection: true })
      this.attach(stream, id, this.peerId)
    } finally {
      this.opening.delete(id)
    }
  }

  private async inbound(stream: Stream, connection: Connection): Promise<void> {
    const id = connection.remotePeer.toString()
    if (this.retired !== undefined) {
      stream.abort(new Error(this.retired))
      return
    }
    if (!(await this.isMember(id).catch(() => false))) {
      // A stranger gets nothing: not a hello, not an error frame. A revoked device is told why
      // (a signed REVOKED frame), so it stops dialling.
      this.refusedCount++
      const notice = await this.refusalNotice(id).catch(() => undefined)
      this.emit('refused', { peerId: id, reason: notice === undefined ? 'not a trusted member of this workspace' : 'a revoked device (sent it a REVOKED notice)', address: connection.remoteAddr.toString() })
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
    if (this.retired !== undefined) {
      // Opened just before this device learnt it was revoked.
      stream.abort(new Error(this.retired))
      return
    }
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
    const link = new StreamLink(stream, peerId, this.engine.limits.maxFrameBytes)
    const session = this.engine.attach(link)
    const entry = { session, initiator }
    this.sessions.set(peerId, entry)
    this.touch(peerId, 'connected')
    if (existing === undefined) this.emit('connected', { peerId })
    let heard = false
    void link.readLoop((frame) => {
      // The peer answered: this session is one it accepted, and the next retry starts from
      // the shortest wait again (a peer that refuses sends nothing at all).
      if (!heard) {
        heard = true
        this.forgetSessionRetry(peerId)
      }
      session.receive(frame)
    }).then(async (err) => {
      // Frames that arrived before the end are still handled (a peer may send and then close).
      await session.idle()
      // A length prefix over the limit (or a malformed one) is a protocol error like any other.
      const name = err?.name ?? ''
      session.close(name.startsWith('Invalid') ? new KitsyncError('PROTOCOL_ERROR', `malformed frame length: ${err?.message ?? name}`) : undefined)
      if (this.sessions.get(peerId) !== entry) return
      this.sessions.delete(peerId)
      this.touch(peerId, this.node.getConnections(peerIdFromString(peerId)).length > 0 ? 'connected' : 'disconnected')
      const reason = err !== undefined && err.name !== 'UnexpectedEOFError' ? { code: 'CONNECTION_CLOSED', message: err.message } : undefined
      this.emit('offline', reason === undefined ? { peerId } : { peerId, reason })
      if (!this.stopped && this.node.getConnections(peerIdFromString(peerId)).length > 0) this.retrySession(peerId)
    })
  }

  private touch(peerId: string, state: KnownPeer['state']): void {
    const entry = this.book.get(peerId) ?? { peerId, state }
    entry.state = state
    entry.lastSeen = Date.now()
    const conn = this.node.getConnections(peerIdFromString(peerId))[0]
    if (conn !== undefined) entry.address = conn.remoteAddr.toString()
    this.book.set(peerId, entry)
  }
}
