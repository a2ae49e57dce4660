import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { MessageStream, MultiaddrConnection, Upgrader } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { randomBytes } from 'node:crypto'
import { Socket } from 'node:net'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { uint16Length } from '../../src/net/length-prefix.js'
import { decryptPieces, tunedNoise } from '../../src/net/tuned-noise.js'

/**
 * The reader of a Noise connection decrypts a message that arrived in several pieces from the
 * pieces (net/tuned-noise.ts), with Noise's own cipher, instead of Noise first joining them.
 * The connection here is a stand-in with the fields Noise's stream has.
 */
describe('Noise messages received in pieces', () => {
  const key = randomBytes(32)
  const nonce = new Uint8Array(12)
  const ad = new Uint8Array(0)

  function connection(): {
    conn: MessageStream & { decrypt: (m: unknown) => unknown }
    calls: { message: unknown; dst: unknown }[]
    own: unknown[]
    errors: () => number
  } {
    const calls: { message: unknown; dst: unknown }[] = []
    const own: unknown[] = []
    let errors = 0
    const conn = {
      // Noise's own: joins a message in pieces into one buffer first.
      decrypt: (message: unknown) => {
        own.push(message)
        return 'own'
      },
      handshake: {
        // (Noise's own uint8arraylist is another major than the one this test imports.)
        decrypt: (message: Parameters<typeof defaultCrypto.chaCha20Poly1305Decrypt>[0], dst?: Uint8Array) => {
          calls.push({ message, dst })
          return defaultCrypto.chaCha20Poly1305Decrypt(message, nonce, ad, key, dst)
        },
      },
      metrics: { decryptedPackets: { increment: () => undefined }, decryptErrors: { increment: () => void errors++ } },
    }
    decryptPieces(conn as unknown as MessageStream)
    return { conn: conn as unknown as MessageStream & { decrypt: (m: unknown) => unknown }, calls, own, errors: () => errors }
  }

  it('decrypts the pieces as they are, with no buffer to join them into, and gets the plaintext', () => {
    const plaintext = randomBytes(60_000)
    const sealed = defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key) as Uint8Array
    // Split as two socket reads would split it (the tag straddles nothing here; see below).
    const pieces = new Uint8ArrayList(sealed.subarray(0, 40_000), sealed.subarray(40_000))
    const { conn, calls, own } = connection()
    const out = conn.decrypt(pieces) as Uint8Array | Uint8ArrayList
    expect(Buffer.from(out.subarray())).toEqual(plaintext)
    expect(calls).toHaveLength(1)
    expect(calls[0]?.message).toBe(pieces)
    expect(calls[0]?.dst).toBeUndefined()
    expect(own).toEqual([])
    // A split inside the tag, and a small message (Noise decrypts those in WebAssembly, which
    // needs one buffer: it joins them itself, a copy of under 1,200 bytes).
    const small = randomBytes(500)
    const smallSealed = defaultCrypto.chaCha20Poly1305Encrypt(small, nonce, ad, key) as Uint8Array
    for (const [message, expected] of [
      [new Uint8ArrayList(sealed.subarray(0, sealed.byteLength - 7), sealed.subarray(sealed.byteLength - 7)), plaintext],
      [new Uint8ArrayList(smallSealed.subarray(0, 100), smallSealed.subarray(100)), small],
    ] as const) {
      expect(Buffer.from((conn.decrypt(message) as Uint8Array | Uint8ArrayList).subarray())).toEqual(expected)
    }
  })

  it("leaves a message in one buffer to Noise's own decrypt, and counts and rethrows a failure", () => {
    const sealed = defaultCrypto.chaCha20Poly1305Encrypt(randomBytes(5000), nonce, ad, key) as Uint8Array
    const { conn, own, errors } = connection()
    expect(conn.decrypt(sealed)).toBe('own')
    expect(own).toEqual([sealed])
    const tampered = Uint8Array.from(sealed)
    tampered[10] = (tampered[10] as number) ^ 1
    expect(() => conn.decrypt(new Uint8ArrayList(tampered.subarray(0, 3000), tampered.subarray(3000)))).toThrow()
    expect(errors()).toBe(1)
  })
})

/**
 * The fields tunedNoise patches are not Noise's API (nor the TCP connection's): if an upgrade of
 * @chainsafe/libp2p-noise or @libp2p/tcp renames them, tunedNoise leaves the connection as it is
 * without a word. This runs a real handshake over real TCP on loopback and fails instead.
 */
describe('tunedNoise on a real Noise connection over TCP', () => {
  it('finds and patches the socket writes, the length reader and decrypt, and the bytes still arrive', async () => {
    const logger = defaultLogger()
    const transport = tcp()({ logger })
    let accepted!: (c: MultiaddrConnection) => void
    const inbound = new Promise<MultiaddrConnection>((resolve) => (accepted = resolve))
    const listener = transport.createListener({ upgrader: { upgradeInbound: async (c: MultiaddrConnection) => accepted(c) } as unknown as Upgrader })
    await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0'))
    try {
      const [addr] = listener.getAddrs()
      const outbound = (await transport.dial(addr!, {
        upgrader: { upgradeOutbound: async (c: MultiaddrConnection) => c } as unknown as Upgrader,
        signal: AbortSignal.timeout(10_000),
      })) as unknown as MultiaddrConnection
      const incoming = await inbound
      const keyA = await generateKeyPair('Ed25519')
      const keyB = await generateKeyPair('Ed25519')
      const encrypter = (privateKey: typeof keyA): ReturnType<ReturnType<typeof tunedNoise>> =>
        tunedNoise()({ privateKey, peerId: peerIdFromPrivateKey(privateKey), logger, upgrader: { getStreamMuxers: () => new Map() } as unknown as Upgrader })

      // The TCP connection's socket and its sendData, which corked() wraps.
      expect((outbound as unknown as { socket: unknown }).socket).toBeInstanceOf(Socket)
      expect(Object.hasOwn(outbound, 'sendData')).toBe(false)
      const [a, b] = await Promise.all([
        encrypter(keyA).secureOutbound(outbound, {
          remotePeer: peerIdFromPrivateKey(keyB),
          skipStreamMuxerNegotiation: true,
          signal: AbortSignal.timeout(10_000),
        }),
        encrypter(keyB).secureInbound(incoming, { skipStreamMuxerNegotiation: true, signal: AbortSignal.timeout(10_000) }),
      ])
      expect(typeof (outbound as unknown as { sendData: unknown }).sendData).toBe('function')
      expect(Object.hasOwn(outbound, 'sendData')).toBe(true)
      for (const { connection } of [a, b]) {
        // The encrypted stream's length-prefix reader, its lengthDecoder replaced by uint16Length.
        const decoder = (connection as unknown as { decoder: unknown }).decoder
        expect(decoder).toBeInstanceOf(LengthPrefixedDecoder)
        expect((decoder as { lengthDecoder: unknown }).lengthDecoder).toBe(uint16Length)
        // Its decrypt replaced (an own property over the class's method), and the handshake's decrypt it calls.
        expect(Object.hasOwn(connection, 'decrypt')).toBe(true)
        expect(typeof (connection as unknown as { handshake: { decrypt: unknown } }).handshake.decrypt).toBe('function')
      }

      // Several Noise messages of 64 KiB, most of them read from the socket in pieces.
      const sent = randomBytes(300_000)
      const received: Uint8Array[] = []
      let bytes = 0
      const all = new Promise<void>((resolve) =>
        b.connection.addEventListener('message', (evt) => {
          const chunk = evt.data.subarray()
          received.push(Uint8Array.from(chunk))
          bytes += chunk.byteLength
          if (bytes >= sent.byteLength) resolve()
        }),
      )
      a.connection.send(sent)
      await all
      expect(Buffer.concat(received)).toEqual(sent)
      await Promise.all([a.connection.close(), b.connection.close()])
    } finally {
      await listener.close()
    }
  })
})
