import { noise } from '@chainsafe/libp2p-noise'
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { Socket } from 'node:net'
import { uint16Length } from './length-prefix.js'

type NoiseFactory = ReturnType<typeof noise>

/**
 * Noise (`@chainsafe/libp2p-noise`) with two costs per message taken out; the wire is the same.
 *
 * 1. What it hands the TCP connection in one send is written to the socket in one system call.
 *    Noise hands the connection each message as two buffers, its 2-byte length and its
 *    ciphertext, and `@libp2p/tcp` writes every buffer of a send with its own `socket.write`:
 *    two system calls per message, four per small update and its window update. On loopback a
 *    write also runs the receiver's side of TCP, so each costs tens of microseconds: the second
 *    write was a fifth of a small update's trip. Corking the socket for the length of one send
 *    makes Node write the buffers together (one `writev`), with no copy. Connections that are
 *    not plain TCP sockets (relayed ones) are left as they are.
 *
 * 2. The reader's length prefixes are read without an exception (`uint16Length`): Noise's own
 *    reader throws a new RangeError each time the bytes received so far end at a message
 *    boundary, i.e. after nearly every small update, and that cost 29 µs per message here.
 *    This sets the `lengthDecoder` of the encrypted stream's `decoder`, fields that are not
 *    part of Noise's API: if a later version has no such decoder, the stream is left as it is.
 *
 * 3. A message that arrived in several pieces is decrypted from them, not first copied into one
 *    buffer. Noise copies it to have a place for the plaintext (`dst`), which only its cipher
 *    for messages under 1,200 bytes uses; Node's cipher, used for larger ones, decrypts piece
 *    by piece and ignores it. A message of 64 KiB nearly always spans two socket reads, so
 *    every byte of a large transfer was copied once more (about a tenth of a 10 MB copy's
 *    time on the receiver here). This replaces the stream's `decrypt`, again not API: left as
 *    it is if the stream has no such method or no `handshake.decrypt` to call.
 *
 * Checked against @chainsafe/libp2p-noise 17.0.0 (and the socket and `sendData` of
 * @libp2p/tcp 11.0.28); package.json pins noise to exactly that version because of these
 * patches, and test/unit/tuned-noise.test.ts fails if one of the fields is gone. Check them again
 * before moving the pin.
 */
export function tunedNoise(...args: Parameters<typeof noise>): NoiseFactory {
  const factory = noise(...args)
  return (components) => {
    const inner = factory(components)
    const secured: ConnectionEncrypter = Object.create(inner)
    secured.secureInbound = async (connection, options) => tuned(await inner.secureInbound(corked(connection), options))
    secured.secureOutbound = async (connection, options) => tuned(await inner.secureOutbound(corked(connection), options))
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

function tuned<T extends { connection: MessageStream }>(secured: T): T {
  cheapLengthReads(secured.connection)
  decryptPieces(secured.connection)
  return secured
}

/** The reader's 2-byte length prefixes read by `uint16Length`. */
function cheapLengthReads(connection: MessageStream): void {
  const decoder = (connection as MessageStream & { decoder?: unknown }).decoder
  if (!(decoder instanceof LengthPrefixedDecoder)) return
  const fields = decoder as unknown as { lengthDecoder?: unknown; encodingLength?: unknown }
  if (typeof fields.lengthDecoder !== 'function' || typeof fields.encodingLength !== 'function') return
  const encodingLength = fields.encodingLength as (length: number) => number
  // Noise's prefix is 2 bytes whatever the length; anything else is not the decoder this expects.
  if (encodingLength(0) !== 2 || encodingLength(0xffff) !== 2) return
  fields.lengthDecoder = uint16Length
}

/** A received message: one buffer, or the pieces it arrived in (a `Uint8ArrayList`). */
type Pieces = Uint8Array | { byteLength: number; bufs: Uint8Array[]; subarray(start?: number, end?: number): Uint8Array }
type Decrypt = (message: Pieces, dst?: Uint8Array) => unknown

/** Noise's largest message, ciphertext and tag (fixed by the Noise spec's framing). */
const MAX_MESSAGE_BYTES = 65535
const TAG_BYTES = 16

/** @internal The reader decrypts each message from the pieces it arrived in (see tunedNoise). */
export function decryptPieces(connection: MessageStream): void {
  type Counter = { increment(): void } | undefined
  const conn = connection as MessageStream & {
    decrypt?: Decrypt
    handshake?: { decrypt?: Decrypt }
    metrics?: { decryptedPackets?: Counter; decryptErrors?: Counter }
  }
  const own = conn.decrypt
  const handshake = conn.handshake
  if (typeof own !== 'function' || handshake === undefined || typeof handshake.decrypt !== 'function') return
  const decrypt = handshake.decrypt.bind(handshake)
  conn.decrypt = function (this: unknown, message: Pieces) {
    // The reader hands over one message at a time; anything else goes the usual way.
    if (message instanceof Uint8Array || message.bufs.length === 1 || message.byteLength > MAX_MESSAGE_BYTES || message.byteLength < TAG_BYTES) {
      return own.call(this, message)
    }
    try {
      const plaintext = decrypt(message)
      conn.metrics?.decryptedPackets?.increment()
      return plaintext
    } catch (err) {
      conn.metrics?.decryptErrors?.increment()
      throw err
    }
  }
}
