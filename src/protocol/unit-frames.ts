import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'

/**
 * Frames of units and blobs on the sync protocol /kitsync/sync/2.0.0 (docs/PROTOCOL.md, "Units
 * and blobs"). They continue the frame types of sync-frames.ts (0-4) on the same stream: a
 * session tells them apart by their first varuint (isUnitFrame) before decoding.
 *
 * Catch-up of the units of a collection (core/unit-types.ts) without naming every unit:
 *   UNIT_SUMS   each side: per bucket (a unit's bucket is fnv1a32(unit id) mod UNIT_BUCKETS) the
 *               sum mod 2^32 of its units' digests (a digest: a hash of the unit id and of its
 *               state: state vector and delete set); no sums at all (count 0) when it has no unit.
 *   UNIT_LIST   for the buckets whose sums differ: each unit of the bucket with its digest.
 *   UNIT_WANT   the units whose digests differ (or that the sender lacks), each with the
 *               sender's state vector of it (y-protocols STEP1).
 *   UNIT_UPDATE the answer to a WANT (step 0, STEP2) or a live update (step 1).
 * Blobs: BLOB_WANT asks for a blob by its SHA-256; BLOB answers with its bytes, or without
 * (`found` false) when the peer does not hold it.
 */
export const UnitFrameType = {
  UNIT_SUMS: 5,
  UNIT_LIST: 6,
  UNIT_WANT: 7,
  UNIT_UPDATE: 8,
  BLOB_WANT: 9,
  BLOB: 10,
} as const

/** Buckets of UNIT_SUMS: 10,000 units, one of them changed, cost 1 KiB of sums and a list of about 40 units each way. */
export const UNIT_BUCKETS = 256
export const UnitStep = { ANSWER: 0, LIVE: 1 } as const

export interface UnitDigest {
  unit: string
  digest: number
}

export type UnitFrame =
  | { type: typeof UnitFrameType.UNIT_SUMS; collection: string; sums: Uint32Array }
  | { type: typeof UnitFrameType.UNIT_LIST; collection: string; buckets: { bucket: number; units: UnitDigest[] }[] }
  | { type: typeof UnitFrameType.UNIT_WANT; collection: string; wants: { unit: string; vector: Uint8Array }[] }
  | { type: typeof UnitFrameType.UNIT_UPDATE; collection: string; unit: string; step: number; payload: Uint8Array }
  | { type: typeof UnitFrameType.BLOB_WANT; hash: string }
  | { type: typeof UnitFrameType.BLOB; hash: string; bytes: Uint8Array | undefined }

const MAX_NAME = 256
const UNIT = /^[A-Za-z0-9_-]{1,64}$/
const MAX_UNITS_IN_FRAME = 100_000
const HASH_BYTES = 32

/** Whether a frame received on a sync stream is one of these (its first varuint). */
export function isUnitFrame(bytes: Uint8Array): boolean {
  const first = bytes[0]
  return first !== undefined && first >= UnitFrameType.UNIT_SUMS && first <= UnitFrameType.BLOB
}

/** The bucket of a unit: FNV-1a (32 bits) of its id's UTF-16 units (ids are ASCII), mod UNIT_BUCKETS. */
export function unitBucket(unit: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < unit.length; i++) {
    h ^= unit.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h % UNIT_BUCKETS
}

export function encodeUnitFrame(frame: UnitFrame): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, frame.type)
  switch (frame.type) {
    case UnitFrameType.UNIT_SUMS:
      encoding.writeVarString(e, frame.collection)
      if (frame.sums.every((sum) => sum === 0)) {
        // No unit here: said in one byte.
        encoding.writeVarUint(e, 0)
        break
      }
      encoding.writeVarUint(e, frame.sums.length)
      for (const sum of frame.sums) encoding.writeUint32BigEndian(e, sum)
      break
    case UnitFrameType.UNIT_LIST:
      encoding.writeVarString(e, frame.collection)
      encoding.writeVarUint(e, frame.buckets.length)
      for (const { bucket, units } of frame.buckets) {
        encoding.writeVarUint(e, bucket)
        encoding.writeVarUint(e, units.length)
        for (const { unit, digest } of units) {
          encoding.writeVarString(e, unit)
          encoding.writeUint32BigEndian(e, digest)
        }
      }
      break
    case UnitFrameType.UNIT_WANT:
      encoding.writeVarString(e, frame.collection)
      encoding.writeVarUint(e, frame.wants.length)
      for (const { unit, vector } of frame.wants) {
        encoding.writeVarString(e, unit)
        encoding.writeVarUint8Array(e, vector)
      }
      break
    case UnitFrameType.UNIT_UPDATE:
      encoding.writeVarString(e, frame.collection)
      encoding.writeVarString(e, frame.unit)
      encoding.writeVarUint(e, frame.step)
      encoding.writeVarUint8Array(e, frame.payload)
      break
    case UnitFrameType.BLOB_WANT:
      encoding.writeUint8Array(e, hexToBytes(frame.hash))
      break
    case UnitFrameType.BLOB:
      encoding.writeUint8Array(e, hexToBytes(frame.hash))
      encoding.writeVarUint(e, frame.bytes === undefined ? 0 : 1)
      if (frame.bytes !== undefined) encoding.writeVarUint8Array(e, frame.bytes)
      break
  }
  return encoding.toUint8Array(e)
}

/** Decode one unit or blob frame; anything malformed is a PROTOCOL_ERROR (the caller closes the stream). */
export function decodeUnitFrame(bytes: Uint8Array): UnitFrame {
  try {
    const d = decoding.createDecoder(bytes)
    const type = decoding.readVarUint(d)
    let frame: UnitFrame
    switch (type) {
      case UnitFrameType.UNIT_SUMS: {
        const collection = readName(d)
        const n = decoding.readVarUint(d)
        if (n !== UNIT_BUCKETS && n !== 0) throw new Error(`${n} unit buckets, not ${UNIT_BUCKETS} (or 0)`)
        const sums = new Uint32Array(UNIT_BUCKETS)
        for (let i = 0; i < n; i++) sums[i] = decoding.readUint32BigEndian(d)
        frame = { type, collection, sums }
        break
      }
      case UnitFrameType.UNIT_LIST: {
        const collection = readName(d)
        const n = decoding.readVarUint(d)
        if (n > UNIT_BUCKETS) throw new Error('too many unit buckets')
        const buckets: { bucket: number; units: UnitDigest[] }[] = []
        let total = 0
        for (let i = 0; i < n; i++) {
          const bucket = decoding.readVarUint(d)
          if (bucket >= UNIT_BUCKETS) throw new Error(`unit bucket ${bucket}`)
          const m = decoding.readVarUint(d)
          if ((total += m) > MAX_UNITS_IN_FRAME) throw new Error('too many units')
          const units: UnitDigest[] = []
          for (let j = 0; j < m; j++) units.push({ unit: readUnit(d), digest: decoding.readUint32BigEndian(d) })
          buckets.push({ bucket, units })
        }
        frame = { type, collection, buckets }
        break
      }
      case UnitFrameType.UNIT_WANT: {
        const collection = readName(d)
        const n = decoding.readVarUint(d)
        if (n > MAX_UNITS_IN_FRAME) throw new Error('too many units')
        const wants: { unit: string; vector: Uint8Array }[] = []
        for (let i = 0; i < n; i++) wants.push({ unit: readUnit(d), vector: decoding.readVarUint8Array(d) })
        frame = { type, collection, wants }
        break
      }
      case UnitFrameType.UNIT_UPDATE: {
        const collection = readName(d)
        const unit = readUnit(d)
        const step = decoding.readVarUint(d)
        if (step !== UnitStep.ANSWER && step !== UnitStep.LIVE) throw new Error(`unknown unit step ${step}`)
        frame = { type, collection, unit, step, payload: decoding.readVarUint8Array(d) }
        break
      }
      case UnitFrameType.BLOB_WANT:
        frame = { type, hash: bytesToHex(decoding.readUint8Array(d, HASH_BYTES)) }
        break
      case UnitFrameType.BLOB: {
        const hash = bytesToHex(decoding.readUint8Array(d, HASH_BYTES))
        const found = decoding.readVarUint(d)
        if (found > 1) throw new Error(`blob flag ${found}`)
        frame = { type, hash, bytes: found === 1 ? decoding.readVarUint8Array(d) : undefined }
        break
      }
      default:
        throw new Error(`unknown unit frame type ${type}`)
    }
    if (decoding.hasContent(d)) throw new Error('trailing bytes')
    return frame
  } catch (err) {
    throw new KitsyncError('PROTOCOL_ERROR', `malformed unit frame: ${(err as Error).message}`, { cause: err })
  }
}

function readName(d: decoding.Decoder): string {
  const s = decoding.readVarString(d)
  if (s.length > MAX_NAME) throw new Error('name too long')
  return s
}

function readUnit(d: decoding.Decoder): string {
  const s = decoding.readVarString(d)
  if (!UNIT.test(s)) throw new Error(`invalid unit id ${JSON.stringify(s.slice(0, 80))}`)
  return s
}

function hexToBytes(hex: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new KitsyncError('INVALID_ARGUMENT', `invalid blob hash ${JSON.stringify(hex)}`)
  const out = new Uint8Array(HASH_BYTES)
  for (let i = 0; i < HASH_BYTES; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

function bytesToHex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}
