import { afterAll } from 'vitest'
import { startPeer } from '../../dist/index.js'
import { cleanup, makeHome } from './cli.js'

export type Peer = Awaited<ReturnType<typeof startPeer>>

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

/**
 * Peers started in the test process over real libp2p on loopback (no mDNS, no control socket),
 * each on a temporary home unless given one; all are stopped and the homes removed after the
 * file's tests.
 */
export function loopbackPeers(): { start: (home?: string) => Promise<Peer>; stop: (peer: Peer) => Promise<void> } {
  const peers: Peer[] = []
  afterAll(async () => {
    for (const p of peers) await p.stop().catch(() => undefined)
    await cleanup()
  })
  return {
    async start(home) {
      const p = await startPeer({ home: home ?? (await makeHome()), listen: LOOPBACK, mdns: false, control: false })
      peers.push(p)
      return p
    },
    async stop(peer) {
      await peer.stop()
      peers.splice(peers.indexOf(peer), 1)
    },
  }
}
