import * as varint from 'uint8-varint'

/**
 * Length readers for `LengthPrefixedDecoder` (`@libp2p/utils`) that never throw for "not
 * enough bytes yet".
 *
 * The decoder reads a length prefix after every message it yields, so most reads find no bytes
 * left. Its stock readers (the varint reader, and Noise's 16-bit one) throw a new RangeError
 * then, which the decoder catches as "wait for more". Building that error (its stack trace)
 * cost more than handling a small message: measured in a peer receiving small updates, Noise's
 * cost 29 µs per message and a shared, prebuilt error still 2-8 µs.
 *
 * These readers return the number of bytes held instead: the decoder then finds that prefix
 * plus data would need more bytes than it holds, keeps them all, and waits, which is what the
 * RangeError made it do. That number is at most 9, below any message size limit.
 */
type Bytes = Parameters<typeof varint.decode>[0]

const byteAt = (buf: Bytes, i: number): number => (buf instanceof Uint8Array ? buf[i] : buf.get(i)) as number

/**
 * A varint length prefix. Ten or more bytes without an end are left to the varint reader,
 * whose RangeError makes the decoder wait until its buffer limit refuses the stream.
 */
export function varintLength(buf: Bytes): number {
  const end = Math.min(buf.byteLength, 10)
  for (let i = 0; i < end; i++) if (byteAt(buf, i) < 0x80) return varint.decode(buf)
  if (end === 10) return varint.decode(buf)
  return buf.byteLength
}

/** A 16-bit big-endian length prefix (Noise's transport messages). */
export function uint16Length(buf: Bytes): number {
  if (buf.byteLength < 2) return buf.byteLength
  return (byteAt(buf, 0) << 8) | byteAt(buf, 1)
}
