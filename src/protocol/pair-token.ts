import { createHash, createHmac } from 'node:crypto'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'

/**
 * A pairing token, as shown by `kitsync pair` and typed into `kitsync join`:
 *
 *   "ks1" + base64url( version=1 | workspaceId | inviter PeerId | addresses | secret (32 bytes)
 *                      | expiresAt (seconds) | flags | checksum: first 4 bytes of sha256(the rest) )
 *
 * The checksum catches truncated and mistyped tokens before any network traffic; a forged
 * token passes it but fails the proof of the secret, which only the inviter can check.
 */
export const TOKEN_PREFIX = 'ks1'
const TOKEN_VERSION = 1
export const TOKEN_SECRET_BYTES = 32

export interface PairToken {
  workspaceId: string
  inviter: string
  addresses: string[]
  secret: Uint8Array
  /** Milliseconds since the epoch (carried with one-second resolution). */
  expiresAt: number
  flags: number
}

/** Public id of a token: lets the inviter find the token without the secret being sent. */
export function tokenId(secret: Uint8Array): string {
  return createHash('sha256').update('kitsync-token-id').update(secret).digest('hex').slice(0, 32)
}

export function encodeToken(token: PairToken): string {
  const e = encoding.createEncoder()
  encoding.writeUint8(e, TOKEN_VERSION)
  encoding.writeVarString(e, token.workspaceId)
  encoding.writeVarString(e, token.inviter)
  encoding.writeVarUint(e, token.addresses.length)
  for (const a of token.addresses) encoding.writeVarString(e, a)
  encoding.writeVarUint8Array(e, token.secret)
  encoding.writeVarUint(e, Math.ceil(token.expiresAt / 1000))
  encoding.writeVarUint(e, token.flags)
  const body = encoding.toUint8Array(e)
  const sum = createHash('sha256').update(body).digest().subarray(0, 4)
  return TOKEN_PREFIX + Buffer.concat([body, sum]).toString('base64url')
}

export function decodeToken(text: string): PairToken {
  const invalid = (why: string): KitsyncError => new KitsyncError('TOKEN_INVALID', `not a valid kitsync pairing token: ${why}`)
  const trimmed = text.trim()
  if (!trimmed.startsWith(TOKEN_PREFIX)) throw invalid(`it should start with ${TOKEN_PREFIX}`)
  const raw = Buffer.from(trimmed.slice(TOKEN_PREFIX.length), 'base64url')
  if (raw.byteLength < 8) throw invalid('too short')
  const body = raw.subarray(0, raw.byteLength - 4)
  const sum = createHash('sha256').update(body).digest().subarray(0, 4)
  if (!sum.equals(raw.subarray(raw.byteLength - 4))) throw invalid('checksum mismatch (truncated or mistyped?)')
  try {
    const d = decoding.createDecoder(new Uint8Array(body))
    const version = decoding.readUint8(d)
    if (version !== TOKEN_VERSION) throw invalid(`unsupported token version ${version}`)
    const workspaceId = decoding.readVarString(d)
    const inviter = decoding.readVarString(d)
    const n = decoding.readVarUint(d)
    if (n > 64) throw invalid('too many addresses')
    const addresses: string[] = []
    for (let i = 0; i < n; i++) addresses.push(decoding.readVarString(d))
    const secret = decoding.readVarUint8Array(d)
    if (secret.byteLength !== TOKEN_SECRET_BYTES) throw invalid('bad secret length')
    const expiresAt = decoding.readVarUint(d) * 1000
    const flags = decoding.readVarUint(d)
    if (decoding.hasContent(d)) throw invalid('trailing bytes')
    return { workspaceId, inviter, addresses, secret: new Uint8Array(secret), expiresAt, flags }
  } catch (err) {
    if (err instanceof KitsyncError) throw err
    throw invalid('damaged content')
  }
}

/**
 * The joiner's proof that it knows the secret, bound to both devices (as Noise authenticated
 * them) and to a fresh nonce from the inviter, so it cannot be replayed or relayed.
 */
export function pairingProof(secret: Uint8Array, parts: { tokenId: string; inviter: string; joiner: string; nonce: string }): string {
  return createHmac('sha256', secret).update(['kitsync-pair-v1', parts.tokenId, parts.inviter, parts.joiner, parts.nonce].join('\u0000')).digest('hex')
}

/** Token flag: the inviter approves the joiner after both compare the confirmation code. */
export const TOKEN_FLAG_CONFIRM = 1
/** Token flag: the joiner is an untrusted storage/relay peer (membership, never the keys). */
export const TOKEN_FLAG_UNTRUSTED = 2

/**
 * The short code both screens show during pairing: 6 digits derived from the secret, the
 * nonce and both PeerIds, so a device in the middle would show a different one.
 */
export function confirmationCode(secret: Uint8Array, parts: { tokenId: string; inviter: string; joiner: string; nonce: string }): string {
  const mac = createHmac('sha256', secret).update(['kitsync-confirm-v1', parts.tokenId, parts.inviter, parts.joiner, parts.nonce].join('\u0000')).digest()
  return String(mac.readUInt32BE(0) % 1_000_000).padStart(6, '0')
}
