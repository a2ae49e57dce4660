import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { abortedError, throwIfAborted } from '../core/abort.js'
import { isKitsyncError, KitsyncError, toKitsyncError } from '../core/errors.js'
import { confirmationCode, pairingProof, tokenId as computeTokenId, type PairToken } from '../protocol/pair-token.js'
import { OLD_VERSION_MESSAGE, SYNC_PROTOCOL_VERSION } from '../protocol/sync-frames.js'

/**
 * Pairing protocol /kitsync/pair/1.0.0: length-prefixed JSON messages over a Noise-encrypted
 * stream (docs/PROTOCOL.md has the exact messages).
 *
 *   joiner  -> inviter  {"t":"join","tokenId":...,"name":...,"workspaceId":...,"sync":3}
 *   inviter -> joiner   {"t":"challenge","nonce":...}              or {"t":"error",...}
 *   joiner  -> inviter  {"t":"proof","mac": HMAC(secret, tokenId|inviter|joiner|nonce)}
 *   inviter -> joiner   {"t":"welcome","workspaceId","name","members"} or {"t":"error",...}
 *
 * The secret never crosses the wire; the proof is bound to both PeerIds as Noise proved them.
 */
export const PAIR_PROTOCOL_ID = '/kitsync/pair/1.0.0'

const log = logger('kitsync:net:pairing')
const MAX_PAIR_MESSAGE = 4 * 1024 * 1024
/**
 * What the inviter reads from a joiner: a join or a proof is under 1 KiB. Anyone may open the
 * protocol, so the inviter does not let a stranger make it buffer 4 MiB per stream.
 */
const MAX_JOINER_MESSAGE = 64 * 1024
/**
 * Pairings the inviter handles at once; more are answered RATE_LIMITED unread. Each one holds a
 * stream until the joiner's next message (JOIN_TIMEOUT_MS for the first): a stranger that opens
 * streams and sends nothing must not hold an unbounded number of them.
 */
export const MAX_PAIRINGS_IN_FLIGHT = 64
/** Of those, from one source address (see PairingGuard.source): one address cannot hold them all. */
export const MAX_PAIRINGS_IN_FLIGHT_PER_SOURCE = 32
/** A joiner sends its join as soon as the stream is open; a stream that stays silent is dropped sooner than a step. */
const JOIN_TIMEOUT_MS = 5_000
const PAIR_TIMEOUT_MS = 15_000
/** How long a joiner waits for the inviter's person to compare codes and approve. */
const CONFIRM_TIMEOUT_MS = 120_000
/** Dial errors of an inviter that reset the connection (busy), worth another attempt. */
const RESET = /ECONNRESET|EPIPE|socket hang up|stream ended|connection (was )?closed/i

export interface Welcome {
  workspaceId: string
  name: string
  /** Yjs update of the workspace's membership collection, with the joiner in it. */
  members: Uint8Array
  /** Workspace keys by epoch (hex), sent over the encrypted stream only. */
  keys: Record<string, string>
}

/** What the inviter's side decides; implemented by the daemon. */
export interface PairingAuthority {
  /** The workspace the inviter belongs to (a token for another one is refused). */
  workspaceId(): string
  /** The secret of a pending token, or a TOKEN_* error (unknown, expired, used). */
  secretFor(tokenId: string): Uint8Array
  /**
   * The proof checked out: use the token up, add the member, return the welcome. `code` is
   * the confirmation code the joiner shows; a token made with --confirm waits for approval.
   */
  admit(tokenId: string, joiner: { deviceId: string; name: string; code: string }): Promise<Welcome>
  /** A refused attempt, for the log. */
  refused(reason: KitsyncError, joiner: string): void
}

/**
 * The inviter's limits on attempts that prove nothing (see RefusalLedger): counted per source
 * address and PeerId; once a source used its budget its attempts are answered RATE_LIMITED
 * without being looked at, and only some refusals are reported in detail.
 */
export interface PairingGuard {
  allow(address: string, peerId: string): boolean
  /** Count a refusal; true when it is to be reported in detail (PairingAuthority.refused). */
  refuse(address: string, peerId: string, rateLimited: boolean): boolean
  /** The unit a budget is kept for, from the connection's remote address. */
  source(remoteAddr: string): string
}

type Message = Record<string, unknown> & { t: string }

function channel(
  stream: Stream,
  maxMessage = MAX_PAIR_MESSAGE,
  caller?: AbortSignal,
): { read: (timeoutMs?: number) => Promise<Message>; write: (m: Message) => Promise<void> } {
  const lp = lpStream(stream, { maxDataLength: maxMessage, maxBufferSize: maxMessage + 16 })
  const signal = AbortSignal.any([AbortSignal.timeout(PAIR_TIMEOUT_MS + CONFIRM_TIMEOUT_MS), ...(caller === undefined ? [] : [caller])])
  return {
    read: async (timeoutMs = PAIR_TIMEOUT_MS) => {
      const bytes = await lp.read({ signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) })
      let value: unknown
      try {
        value = JSON.parse(new TextDecoder().decode(bytes.subarray()))
      } catch {
        throw new KitsyncError('PROTOCOL_ERROR', 'pairing message is not JSON')
      }
      if (typeof value !== 'object' || value === null || typeof (value as Message).t !== 'string') {
        throw new KitsyncError('PROTOCOL_ERROR', 'malformed pairing message')
      }
      const m = value as Message
      if (m.t === 'error') {
        const code = typeof m.code === 'string' ? m.code : 'TOKEN_REFUSED'
        throw KitsyncError.fromJSON({ code, message: typeof m.message === 'string' ? m.message : 'refused by the inviter' })
      }
      return m
    },
    write: (m) => lp.write(new TextEncoder().encode(JSON.stringify(m)), { signal }),
  }
}

/**
 * Inviter side: a handler of pairing streams. With a guard, attempts that prove nothing are
 * counted per source and answered RATE_LIMITED once the source used its budget; a join that names
 * a pending token of this device is always heard (only a token holder knows its id), so a flood
 * from one address does not lock out a real device, even on the same address.
 */
export function pairingHandler(authority: PairingAuthority, self: string, guard?: PairingGuard): (stream: Stream, connection: Connection) => Promise<void> {
  let inFlight = 0
  // At most MAX_PAIRINGS_IN_FLIGHT entries: one per source with a pairing in flight.
  const bySource = new Map<string, number>()
  return async (stream, connection) => {
    const source = guard?.source(connection.remoteAddr.toString()) ?? ''
    const fromSource = bySource.get(source) ?? 0
    if (inFlight >= MAX_PAIRINGS_IN_FLIGHT || fromSource >= MAX_PAIRINGS_IN_FLIGHT_PER_SOURCE) {
      const busy = { t: 'error', code: 'RATE_LIMITED', message: 'the inviting device is busy with other pairing attempts; try again in a minute' }
      await channel(stream, MAX_JOINER_MESSAGE)
        .write(busy)
        .then(
          () => stream.close({ signal: AbortSignal.timeout(1000) }),
          (err: unknown) => stream.abort(err as Error),
        )
        .catch((err: unknown) => stream.abort(err as Error))
      return
    }
    inFlight++
    bySource.set(source, fromSource + 1)
    try {
      await handlePairing(stream, connection, authority, self, guard)
    } finally {
      inFlight--
      const left = (bySource.get(source) ?? 1) - 1
      if (left > 0) bySource.set(source, left)
      else bySource.delete(source)
    }
  }
}

function pending(authority: PairingAuthority, tokenId: unknown): boolean {
  if (typeof tokenId !== 'string') return false
  try {
    authority.secretFor(tokenId)
    return true
  } catch {
    return false // unknown, used or expired: not pending, which is the question
  }
}

/** Inviter side: handle one pairing stream. */
export async function handlePairing(stream: Stream, connection: Connection, authority: PairingAuthority, self: string, guard?: PairingGuard): Promise<void> {
  const ch = channel(stream, MAX_JOINER_MESSAGE)
  const joiner = connection.remotePeer.toString()
  const source = guard?.source(connection.remoteAddr.toString()) ?? ''
  let limited = false
  try {
    const join = await ch.read(JOIN_TIMEOUT_MS)
    if (guard !== undefined && !pending(authority, join.tokenId) && !guard.allow(source, joiner)) {
      limited = true
      throw new KitsyncError('RATE_LIMITED', 'too many refused pairing attempts from this address; try again in a minute')
    }
    if (join.t !== 'join' || typeof join.tokenId !== 'string') throw new KitsyncError('PROTOCOL_ERROR', 'expected a join message')
    const name = typeof join.name === 'string' && join.name.length > 0 ? join.name.slice(0, 100) : joiner.slice(-8)
    if (join.workspaceId !== authority.workspaceId()) throw new KitsyncError('TOKEN_REFUSED', 'this token is for another workspace')
    const secret = authority.secretFor(join.tokenId)
    const nonce = randomBytes(32).toString('hex')
    await ch.write({ t: 'challenge', nonce })
    const proof = await ch.read()
    if (proof.t !== 'proof' || typeof proof.mac !== 'string') throw new KitsyncError('PROTOCOL_ERROR', 'expected a proof message')
    const expected = Buffer.from(pairingProof(secret, { tokenId: join.tokenId, inviter: self, joiner, nonce }), 'hex')
    const given = Buffer.from(proof.mac, 'hex')
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
      throw new KitsyncError('TOKEN_REFUSED', 'the pairing proof does not match this token')
    }
    // A joiner of an older sync version could not read the workspace it would join (nor sync
    // with it): refused before it becomes a member. Told only once it proved the token.
    if (join.sync !== SYNC_PROTOCOL_VERSION) throw new KitsyncError('VERSION_MISMATCH', OLD_VERSION_MESSAGE)
    const code = confirmationCode(secret, { tokenId: join.tokenId, inviter: self, joiner, nonce })
    const welcome = await authority.admit(join.tokenId, { deviceId: joiner, name, code })
    await ch.write({
      t: 'welcome',
      workspaceId: welcome.workspaceId,
      name: welcome.name,
      members: Buffer.from(welcome.members).toString('base64'),
      keys: welcome.keys,
    })
    await stream.close()
  } catch (err) {
    const e = toKitsyncError(err)
    if (guard === undefined || guard.refuse(source, joiner, limited)) authority.refused(e, joiner)
    const shown =
      isKitsyncError(e) && (e.code.startsWith('TOKEN_') || e.code.startsWith('DEVICE_') || e.code === 'RATE_LIMITED' || e.code === 'VERSION_MISMATCH')
        ? e
        : new KitsyncError('TOKEN_REFUSED', 'pairing failed')
    // The refusal is recorded above; a joiner that cannot be told has hung up.
    await ch
      .write({ t: 'error', code: shown.code, message: shown.message })
      .catch((err: unknown) => log('cannot tell joiner %s that pairing failed (%s): %e', joiner, shown.code, err))
    await stream.close().catch(() => stream.abort(e))
  }
}

/**
 * Joiner side: dial the inviter from the token, prove the secret, receive the welcome.
 * `signal` aborted: rejects with ABORTED, and the stream is reset. Aborted after the proof was
 * sent, the inviter may have admitted this device and used the token up all the same.
 */
export async function joinWithToken(
  node: Libp2p,
  token: PairToken,
  name: string,
  onCode?: (code: string) => void,
  options: { signal?: AbortSignal } = {},
): Promise<Welcome> {
  const caller = options.signal
  throwIfAborted(caller, 'join')
  if (Date.now() > token.expiresAt) {
    throw new KitsyncError('TOKEN_EXPIRED', `this token expired at ${new Date(token.expiresAt).toISOString()}; ask for a new one with 'kitsync pair'`)
  }
  const inviter = peerIdFromString(token.inviter)
  const addrs = token.addresses.map((a) => multiaddr(a))
  await node.peerStore.merge(inviter, { multiaddrs: addrs })
  let stream: Stream
  const deadline = AbortSignal.any([AbortSignal.timeout(PAIR_TIMEOUT_MS), ...(caller === undefined ? [] : [caller])])
  for (let attempt = 0; ; attempt++) {
    try {
      stream = await node.dialProtocol(inviter, PAIR_PROTOCOL_ID, { signal: deadline, runOnLimitedConnection: true })
      break
    } catch (err) {
      // An inviter that accepted the TCP connection and reset it is busy (its limit of new
      // connections a second per address): try again shortly, within the same deadline.
      if (!deadline.aborted && RESET.test((err as Error).message) && attempt < 8) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random())))
        if (!deadline.aborted) continue
      }
      throwIfAborted(caller, 'join')
      throw new KitsyncError(
        'PEER_UNREACHABLE',
        `cannot reach the inviting device at ${token.addresses.join(', ') || '(no address)'}: ${(err as Error).message}`,
        { cause: err },
      )
    }
  }
  const ch = channel(stream, MAX_PAIR_MESSAGE, caller)
  const id = computeTokenId(token.secret)
  let reset = false
  try {
    await ch.write({ t: 'join', tokenId: id, name, workspaceId: token.workspaceId, sync: SYNC_PROTOCOL_VERSION })
    const challenge = await ch.read()
    if (challenge.t !== 'challenge' || typeof challenge.nonce !== 'string') throw new KitsyncError('PROTOCOL_ERROR', 'expected a challenge')
    const parts = { tokenId: id, inviter: token.inviter, joiner: node.peerId.toString(), nonce: challenge.nonce }
    await ch.write({ t: 'proof', mac: pairingProof(token.secret, parts) })
    onCode?.(confirmationCode(token.secret, parts))
    const welcome = await ch.read(CONFIRM_TIMEOUT_MS)
    if (welcome.t !== 'welcome' || typeof welcome.workspaceId !== 'string' || typeof welcome.name !== 'string' || typeof welcome.members !== 'string') {
      throw new KitsyncError('PROTOCOL_ERROR', 'expected a welcome')
    }
    if (welcome.workspaceId !== token.workspaceId) throw new KitsyncError('TOKEN_REFUSED', 'the inviter answered for another workspace')
    const keys: Record<string, string> = {}
    if (typeof welcome.keys === 'object' && welcome.keys !== null) for (const [k, v] of Object.entries(welcome.keys)) if (typeof v === 'string') keys[k] = v
    return { workspaceId: welcome.workspaceId, name: welcome.name, members: new Uint8Array(Buffer.from(welcome.members, 'base64')), keys }
  } catch (err) {
    if (caller?.aborted !== true) throw err
    // Aborted by the caller: reset at once rather than wait for the inviter's side to close.
    const aborted = abortedError('join', caller)
    stream.abort(aborted)
    reset = true
    throw aborted
  } finally {
    // The welcome is in hand, or an error is on its way: a stream that cannot close cleanly changes neither.
    if (!reset) await stream.close().catch((err: unknown) => log('closing the pairing stream with the inviter: %e', err))
  }
}
