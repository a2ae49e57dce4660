import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { BLIND_PROTOCOL_ID } from '../blind/blind-frames.js'
import type { BlindClient, BlindClientSession } from '../blind/blind-client.js'
import type { BlindServer } from '../blind/blind-server.js'
import { StreamLink } from './stream-link.js'

/**
 * The blind store protocol over libp2p (docs/PROTOCOL.md): one long-lived stream per device
 * and store, length-prefixed frames, usable over a relayed connection.
 */
export { BLIND_PROTOCOL_ID }
/** Frames up to 64 MiB (a snapshot of a large workspace). */
export const BLIND_MAX_FRAME = 64 * 1024 * 1024

export type StreamHandler = (stream: Stream, connection: Connection) => void

/** Store side: serve one stream (the server checks membership on hello and on every write). */
export function serveBlind(server: BlindServer): StreamHandler {
  return (stream, connection) => {
    const link = new StreamLink(stream, connection.remotePeer.toString(), BLIND_MAX_FRAME)
    const session = server.attach(link)
    void link.readLoop((frame) => session.receive(frame)).then(() => session.close())
  }
}

/** Device side: open a session with a store peer; it runs until the stream ends. */
export async function openBlind(node: Libp2p, peerId: string, client: BlindClient): Promise<BlindClientSession> {
  const stream = await node.dialProtocol(peerIdFromString(peerId), BLIND_PROTOCOL_ID, { runOnLimitedConnection: true, signal: AbortSignal.timeout(15_000) })
  const link = new StreamLink(stream, peerId, BLIND_MAX_FRAME)
  const session = await client.attach(link)
  void link
    .readLoop((frame) => session.receive(frame))
    .then(async () => {
      await session.idle()
      session.close()
    })
  return session
}
