import { crc32 } from 'node:zlib'

/**
 * Every binary value the store writes is framed as
 *   [format: u8 = 1][crc32 of payload: u32 big-endian][payload]
 * so a damaged value is detected on load instead of being fed to Yjs.
 */
const FORMAT = 1
const HEADER = 5

export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + payload.byteLength)
  out[0] = FORMAT
  new DataView(out.buffer).setUint32(1, crc32(payload))
  out.set(payload, HEADER)
  return out
}

/** Returns the payload, or undefined when the value is damaged. */
export function unframe(value: Uint8Array): Uint8Array | undefined {
  if (value.byteLength < HEADER || value[0] !== FORMAT) return undefined
  const payload = value.subarray(HEADER)
  const expected = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(1)
  return crc32(payload) === expected ? payload : undefined
}
