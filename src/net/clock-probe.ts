import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'

/**
 * Clock probe /kitsync/clock/1.0.0, between members of the workspace (the answering side
 * checks): the asker sends ROUNDS length-prefixed one-byte requests (0x01), one at a time; each
 * is answered at once with the answerer's wall clock, Unix milliseconds as a big-endian float64
 * (8 bytes). The asker keeps the round with the shortest round trip (its answer is the least
 * delayed): offset = answer - (sent + received) / 2, accurate to within half that round trip.
 * Conflicts are ordered by hybrid logical clocks that start from the wall clock, so `kitsync
 * doctor` reports a device whose clock is off (docs/PROTOCOL.md).
 */
export const CLOCK_PROTOCOL_ID = '/kitsync/clock/1.0.0'
const REQUEST = 0x01
const ANSWER_BYTES = 8
const ROUNDS = 3
const TIMEOUT_MS = 5_000

const log = logger('kitsync:net:clock-probe')

/** A device's clock against ours: offset (theirs minus ours) and the round trip it was measured over. */
export interface ClockReading {
  offsetMs: number
  rttMs: number
  /** When it was measured (our clock). */
  at: number
}

/** Answer a member's clock probe; anyone else's stream is aborted. */
export async function handleClockProbe(
  stream: Stream,
  connection: Connection,
  isMember: (deviceId: string) => Promise<boolean>,
  now = Date.now,
): Promise<void> {
  const from = connection.remotePeer.toString()
  const member = await isMember(from).catch((err: unknown) => {
    log('cannot check whether %s is a member; its clock probe is refused: %e', from, err)
    return false
  })
  if (!member) {
    stream.abort(new Error('not a member'))
    return
  }
  const lp = lpStream(stream, { maxDataLength: 1 })
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const request = (await lp.read({ signal })).subarray()
      if (request.byteLength !== 1 || request[0] !== REQUEST) throw new Error(`not a clock probe request (${request.byteLength} bytes)`)
      const answer = new Uint8Array(ANSWER_BYTES)
      new DataView(answer.buffer).setFloat64(0, now())
      await lp.write(answer, { signal })
    }
    await stream.close()
  } catch (err) {
    stream.abort(err as Error)
  }
}

/** The protocol handler of a peer: answers members' probes. */
export function clockProbeHandler(isMember: (deviceId: string) => Promise<boolean>): (stream: Stream, connection: Connection) => Promise<void> {
  return (stream, connection) => handleClockProbe(stream, connection, isMember)
}

/** Measure a connected member's clock against ours. */
export async function probeClock(node: Libp2p, peerId: string, now = Date.now): Promise<ClockReading> {
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  const stream = await node.dialProtocol(peerIdFromString(peerId), CLOCK_PROTOCOL_ID, { signal, runOnLimitedConnection: true })
  const lp = lpStream(stream, { maxDataLength: ANSWER_BYTES })
  try {
    let best: ClockReading | undefined
    for (let i = 0; i < ROUNDS; i++) {
      const sent = now()
      await lp.write(Uint8Array.of(REQUEST), { signal })
      const answer = (await lp.read({ signal })).subarray()
      const received = now()
      if (answer.byteLength !== ANSWER_BYTES) throw new Error(`a clock answer of ${answer.byteLength} bytes, not ${ANSWER_BYTES}`)
      const theirs = new DataView(answer.buffer, answer.byteOffset, ANSWER_BYTES).getFloat64(0)
      if (!Number.isFinite(theirs)) throw new Error('a clock answer that is not a time')
      const rttMs = received - sent
      if (best === undefined || rttMs < best.rttMs) best = { offsetMs: theirs - (sent + received) / 2, rttMs, at: received }
    }
    await stream.close()
    return best as ClockReading
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}
