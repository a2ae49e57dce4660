import type { PeerOptions } from '../daemon/peer.js'

export type { PeerOptions }

/**
 * Run a full peer inside this process (store, mesh, pairing, control socket), as
 * `kitsync peer start` does. libp2p is loaded only when this is called.
 *
 *   const peer = await startPeer({ home, listen: ['/ip4/0.0.0.0/tcp/4771'] })
 *   peer.workspace.on('sync:update', (e) => ...)
 *   await peer.stop()
 */
export async function startPeer(options: PeerOptions) {
  const { Peer } = await import('../daemon/peer.js')
  return Peer.start(options)
}
