import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import type { MessageStream } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { decryptPieces } from '../../src/net/tuned-noise.js'

/**
 * The reader of a Noise connection decrypts a message that arrived in several pieces from the
 * pieces (net/tuned-noise.ts), with Noise's own cipher, instead of Noise first joining them.
 * The connection here is a stand-in with the fields Noise's stream has.
 */
describe('Noise messages received in pieces', () => {
  const key = randomBytes(32)
  const nonce = new Uint8Array(12)
  const ad = new Uint8Array(0)

  function connection(): { conn: MessageStream & { decrypt: (m: unknown) => unknown }; calls: { message: unknown; dst: unknown }[]; own: unknown[]; errors: () => number } {
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
        decrypt: (message: Uint8Array | Uint8ArrayList, dst?: Uint8Array) => {
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
