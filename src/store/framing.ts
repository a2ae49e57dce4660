import { crc32 } from 'node:zlib'

/**
 * Every binary value the store writes is framed as
 *   [format: u8 = 1][crc32 of payload: u32 big-endian][payload]
 * (or format 2: the payload is a reference to a file, see snapshot-files.ts)
 * so a damaged value is detected on load instead of being fed to Yjs.
 */
const FORMAT = 1
/** The payload is a reference to a file that holds the value (see snapshot-files.ts). */
export const FILE_REF_FORMAT = 2
const HEADER = 5
/** What framing adds to a payload. */
export const FRAME_HEADER_BYTES = HEADER

export function frame(payload: Uint8Array, format = FORMAT): Uint8Array {
  const out = new Uint8Array(HEADER + payload.byteLength)
  out[0] = format
  new DataView(out.buffer).setUint32(1, crc32(payload))
  out.set(payload, HEADER)
  return out
}

/** Returns the payload, or undefined when the value is damaged (or of another format). */
export function unframe(value: Uint8Array, format = FORMAT): Uint8Array | undefined {
  if (value.byteLength < HEADER || value[0] !== format) return undefined
  const payload = value.subarray(HEADER)
  const expected = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(1)
  return crc32(payload) === expected ? payload : undefined
}
