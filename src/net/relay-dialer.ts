import type { IdentifyResult, Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { BackoffScheduler } from './backoff.js'

const HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

/** What the relay dialer needs of the mesh. */
export interface RelayDialerComponents {
  node: Pick<Libp2p, 'dial' | 'getConnections'>
  /** This device's peer id (never dialled through a relay). */
  self: string
  isMember: (deviceId: string) => Promise<boolean>
  /** Every member's device id. */
  members: () => Promise<string[]>
  /** False once the mesh stopped or was retired. */
  active: () => boolean
  /** The mesh's redials: a dial through the relays that fails is tried again under `relay:<id>`. */
  redials: Pick<BackoffScheduler, 'schedule'>
}

/**
 * Reaches members through circuit relay v2: learns which members serve as a relay (the VPS,
 * `peer start --relay`) from identify, and dials every member this device has no connection to
 * through them. The reservations on those relays come from listening on `/p2p-circuit` (see
 * createMeshNode); hole punching (DCUtR) may then upgrade a relayed connection to a direct one.
 */
export class RelayDialer {
  /** Relays (members that serve circuit relay v2) by peer id: their direct address. */
  private readonly relays = new Map<string, string>()
  private readonly c: RelayDialerComponents

  constructor(components: RelayDialerComponents) {
    this.c = components
  }

  /** The members known to serve as a relay (while connected to them directly). */
  known(): string[] {
    return [...this.relays.keys()]
  }

  /** A peer was identified: if it serves circuit relay over a direct connection, it may be a relay for us. */
  identified(result: IdentifyResult): void {
    if (!result.protocols.includes(HOP_PROTOCOL) || result.connection.remoteAddr.toString().includes('/p2p-circuit')) return
    void this.found(result.peerId.toString(), result.connection.remoteAddr.toString())
  }

  /** A member that relays: reach every member we are not connected to through it. */
  private async found(relay: string, address: string): Promise<void> {
    if (!this.c.active() || !(await this.c.isMember(relay).catch(() => false)) /* no answer: not a relay of ours */) return
    this.relays.set(relay, address.replace(/\/p2p\/[^/]+$/, ''))
    for (const id of await this.c.members().catch(() => []) /* no members readable: dial none now; the next relay event tries again */) this.dialThrough(id)
  }

  /** A member's last connection closed: a relay is one no more; any other member is dialled through the relays. */
  lost(id: string): void {
    if (this.relays.has(id)) this.relays.delete(id)
    else if (this.relays.size > 0) this.dialThrough(id)
  }

  /** Dial a member through the relays we know (until a connection to it exists). */
  private dialThrough(id: string): void {
    if (!this.c.active() || id === this.c.self || this.relays.has(id) || this.relays.size === 0) return
    const peer = peerIdFromString(id)
    if (this.c.node.getConnections(peer).length > 0) return
    const dial = async (): Promise<void> => {
      if (this.c.node.getConnections(peer).length > 0) return
      let last: unknown
      for (const [relay, address] of this.relays) {
        try {
          await this.c.node.dial(multiaddr(`${address}/p2p/${relay}/p2p-circuit/p2p/${id}`))
          return
        } catch (err) {
          last = err
        }
      }
      throw last
    }
    dial().catch(() => this.c.redials.schedule(`relay:${id}`, dial))
  }
}
