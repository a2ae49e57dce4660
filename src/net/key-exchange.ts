import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'

/**
 * Key exchange /kitsync/keys/1.0.0, between trusted members only (both sides check):
 *   {"t":"pull","epoch":N}  ->  {"t":"keys","keys":{"<epoch>":"<hex>",...}}   keys newer than N
 *   {"t":"push","keys":{...}}                                                  one-way, after a rotation
 * One length-prefixed JSON message each way over the Noise-encrypted stream.
 */
export const KEYS_PROTOCOL_ID = '/kitsync/keys/1.0.0'
const MAX_MESSAGE = 64 * 1024
const TIMEOUT_MS = 10_000

const log = logger('kitsync:net:key-exchange')

export interface KeyHolder {
  isTrusted(deviceId: string): Promise<boolean>
  epoch(): number
  keysAfter(epoch: number): Record<string, string>
  /** Keys from a trusted member. */
  receive(keys: Record<string, string>, from: string): Promise<void>
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

function parse(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined // not JSON: ignored, as any message that is not a pull or a push
  }
}

function keysOf(value: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (typeof value !== 'object' || value === null) return out
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v
  return out
}

export async function handleKeys(stream: Stream, connection: Connection, holder: KeyHolder): Promise<void> {
  const from = connection.remotePeer.toString()
  // A peer whose trust cannot be checked gets no keys.
  const trusted = await holder.isTrusted(from).catch((err: unknown) => {
    log('cannot check whether %s is trusted; its key request is refused: %e', from, err)
    return false
  })
  if (!trusted) {
    stream.abort(new Error('not a member'))
    return
  }
  const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE })
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  try {
    const msg = parse((await lp.read({ signal })).subarray())
    if (msg?.t === 'pull' && typeof msg.epoch === 'number') {
      await lp.write(json({ t: 'keys', keys: holder.keysAfter(msg.epoch) }), { signal })
    } else if (msg?.t === 'push') {
      await holder.receive(keysOf(msg.keys), from)
    }
    await stream.close()
  } catch (err) {
    stream.abort(err as Error)
  }
}

/** Ask a trusted member for the keys newer than ours. */
export async function pullKeys(node: Libp2p, peerId: string, holder: KeyHolder): Promise<void> {
  const stream = await node.dialProtocol(peerIdFromString(peerId), KEYS_PROTOCOL_ID, { signal: AbortSignal.timeout(TIMEOUT_MS), runOnLimitedConnection: true })
  const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE })
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  try {
    await lp.write(json({ t: 'pull', epoch: holder.epoch() }), { signal })
    const msg = parse((await lp.read({ signal })).subarray())
    if (msg?.t === 'keys') await holder.receive(keysOf(msg.keys), peerId)
    await stream.close()
  } catch (err) {
    stream.abort(err as Error)
  }
}

/** Give a trusted member keys it may not have yet (after a rotation). */
export async function pushKeys(node: Libp2p, peerId: string, keys: Record<string, string>): Promise<void> {
  const stream = await node.dialProtocol(peerIdFromString(peerId), KEYS_PROTOCOL_ID, { signal: AbortSignal.timeout(TIMEOUT_MS), runOnLimitedConnection: true })
  const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE })
  try {
    await lp.write(json({ t: 'push', keys }), { signal: AbortSignal.timeout(TIMEOUT_MS) })
    await stream.close()
  } catch (err) {
    stream.abort(err as Error)
  }
}
