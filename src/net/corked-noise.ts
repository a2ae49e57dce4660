import { noise } from '@chainsafe/libp2p-noise'
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface'
import { Socket } from 'node:net'

type NoiseFactory = ReturnType<typeof noise>

/**
 * Noise (`@chainsafe/libp2p-noise`), with what it hands the TCP connection in one send written
 * to the socket in one system call.
 *
 * Noise hands the connection each message as two buffers, its 2-byte length and its
 * ciphertext, and `@libp2p/tcp` writes every buffer of a send with its own `socket.write`: two
 * system calls per message, four per small update and its window update. On loopback a write
 * also runs the receiver's side of TCP, so each costs tens of microseconds: the second write
 * was a fifth of a small update's trip. Corking the socket for the length of one send makes
 * Node write the buffers together (one `writev`), with no copy.
 *
 * Connections that are not plain TCP sockets (relayed ones) are left as they are.
 */
export function corkedNoise(...args: Parameters<typeof noise>): NoiseFactory {
  const factory = noise(...args)
  return (components) => {
    const inner = factory(components)
    const secured: ConnectionEncrypter = Object.create(inner)
    secured.secureInbound = (connection, options) => inner.secureInbound(corked(connection), options)
    secured.secureOutbound = (connection, options) => inner.secureOutbound(corked(connection), options)
    return secured as ReturnType<NoiseFactory>
  }
}

/** The connection, its `sendData` (the TCP transport's socket writes) run with the socket corked. */
function corked(connection: MessageStream): MessageStream {
  const conn = connection as MessageStream & { socket?: unknown; sendData?: (data: unknown) => unknown }
  const socket = conn.socket
  const sendData = conn.sendData
  if (!(socket instanceof Socket) || typeof sendData !== 'function') return connection
  conn.sendData = function (this: unknown, data: unknown) {
    socket.cork()
    try {
      return sendData.call(this, data)
    } finally {
      socket.uncork()
    }
  }
  return connection
}
