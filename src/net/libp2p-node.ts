import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify, type Identify } from '@libp2p/identify'
import type { Connection, Libp2p, PrivateKey } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { tunedNoise } from './tuned-noise.js'

/** The TCP port a peer listens on unless told otherwise. */
export const DEFAULT_PORT = 4771
export const DEFAULT_LISTEN = [`/ip4/0.0.0.0/tcp/${DEFAULT_PORT}`]

/**
 * Limits of a relayed connection on a kitsync relay: enough for sync (a large catch-up, hours of
 * live updates), unlike libp2p's 128 KiB / 2 minutes. Past them the relay cuts the connection and
 * the devices dial again. The relay reads the duration in milliseconds (the client in seconds).
 */
export const RELAY_LIMITS = { durationMs: 60 * 60 * 1000, dataBytes: 1n << 30n, maxReservations: 128 } as const

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

/** Whether mDNS can run here (`mdns` false: off, as with --no-mdns on the VPS). */
export async function discoveryState(mdns: boolean): Promise<DiscoveryState> {
  if (!mdns) return { mdns: 'off' }
  // mDNS modules (multicast-dns, dgram) load only when mDNS is on (not with --no-mdns, the VPS).
  const { multicastUnavailable } = await import('./multicast-route.js')
  const reason = await multicastUnavailable()
  return reason === undefined ? { mdns: 'on' } : { mdns: 'unavailable', reason: `${reason}; peers can still be reached with --bootstrap` }
}

export interface MeshNodeOptions {
  privateKey: PrivateKey
  listen: string[]
  /** Serve as a circuit relay v2 for members. */
  relay: boolean
  isMember: (deviceId: string) => Promise<boolean>
}

/**
 * The libp2p node of a mesh, not started: TCP + Noise + Yamux, identify, ping, DCUtR, the circuit
 * relay transport, and the relay server if asked.
 */
export function createMeshNode(options: MeshNodeOptions): Promise<Libp2p> {
  const isMember = options.isMember
  // A device also listens through any relay it connects to (`/p2p-circuit`: reservations are
  // made on members that serve circuit relay, e.g. the VPS), and upgrades a relayed connection
  // to a direct one by hole punching (DCUtR) when the networks allow it.
  const listen = [...options.listen, ...(options.relay ? [] : ['/p2p-circuit'])]
  return createLibp2p({
    start: false,
    privateKey: options.privateKey,
    addresses: { listen },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [tunedNoise()],
    streamMuxers: [yamux()],
    connectionManager: { ...INBOUND_LIMITS },
    peerDiscovery: [],
    // Only members get a reservation on our relay (and only if we are one).
    connectionGater: { denyInboundRelayReservation: async (peer) => !(await isMember(peer.toString()).catch(() => false)) /* no answer: refuse */ },
    services: {
      // Not at once on every connection: see identifyLater.
      identify: identify({ runOnConnectionOpen: false }),
      ping: ping(),
      dcutr: dcutr(),
      ...(options.relay
        ? {
            relay: circuitRelayServer({
              reservations: {
                maxReservations: RELAY_LIMITS.maxReservations,
                defaultDurationLimit: RELAY_LIMITS.durationMs,
                defaultDataLimit: RELAY_LIMITS.dataBytes,
              },
            }),
          }
        : {}),
    },
  })
}

/**
 * How long after a direct connection opens its peer is identified (see identifyLater).
 * Long enough for a join or a first sync exchange to be under way without it; short enough
 * that a member serving circuit relay (the VPS) is known as one a second after connecting.
 */
export const IDENTIFY_DELAY_MS = 1000

/**
 * Identify a connection's peer (its listen addresses and protocols: how this device learns
 * that a member serves circuit relay, and what hole punching needs) IDENTIFY_DELAY_MS after
 * the connection opened; a relayed connection at once, for hole punching. libp2p's default,
 * at once on every connection, put the identify exchange of both sides (a signed peer record
 * each, peer store updates) between the Noise handshake and the pairing or the first sync
 * exchange: on a join of a 10 MiB workspace the session's hello came 8-11 ms later and the
 * caught-up copy 13-29 ms later (catchUp.10MB, alternating runs of 7 joins each).
 * `running` is false once the mesh stopped.
 */
export function identifyLater(node: Libp2p, connection: Connection, running: () => boolean): void {
  const run = (): void => {
    if (!running() || connection.status !== 'open') return
    ;(node.services as { identify: Identify }).identify.identify(connection).catch(() => undefined) // fails when the connection closed first: nothing to learn then
  }
  if (!connection.direct || connection.limits !== undefined) return run()
  setTimeout(run, IDENTIFY_DELAY_MS).unref()
}
