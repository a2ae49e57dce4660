import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'

/**
 * Frames of the blind store protocol `/kitsync/blind/1.0.0` (docs/PROTOCOL.md): between a
 * trusted device and an untrusted storage peer (the VPS), which keeps opaque encrypted entries
 * numbered with its own increasing sequence. Body: `type: varuint`, then the fields.
 */
export const BLIND_PROTOCOL_ID = '/kitsync/blind/1.0.0'
export const BLIND_PROTOCOL_VERSION = 1

export const BlindType = {
  /** device -> store: version, workspaceId, storeId it knows ('' if none), cursor (last seq applied). */
  HELLO: 0,
  /** store -> device: storeId, snapshot seq, head seq, entries and bytes since the snapshot. */
  WELCOME: 1,
  /** either way: code, message; the sender closes. Same layout as the sync protocol's ERROR. */
  ERROR: 2,
  /** device -> store: one encrypted entry (epoch, ciphertext). */
  PUT: 3,
  /** store -> device: the seq given to the device's last PUT or SNAPSHOT_PUT, in order. */
  ACK: 4,
  /** store -> device: an entry it lacks (seq, epoch, ciphertext). */
  ENTRY: 5,
  /** device -> store: an encrypted compacted state covering every entry up to `covers`. */
  SNAPSHOT_PUT: 6,
  /** store -> device: the snapshot (covers, epoch, ciphertext), sent before newer entries. */
  SNAPSHOT: 7,
  /** store -> device: catch-up done up to `head`; new entries follow as they arrive. */
  LIVE: 8,
} as const

export type BlindFrame =
  | { type: 0; version: number; workspaceId: string; storeId: string; cursor: number }
  | { type: 1; storeId: string; snapshotSeq: number; head: number; sinceCount: number; sinceBytes: number }
  | { type: 2; code: string; message: string }
  | { type: 3; epoch: number; ciphertext: Uint8Array }
  | { type: 4; seq: number }
  | { type: 5; seq: number; epoch: number; ciphertext: Uint8Array }
  | { type: 6; covers: number; epoch: number; ciphertext: Uint8Array }
  | { type: 7; covers: number; epoch: number; ciphertext: Uint8Array }
  | { type: 8; head: number }

export function encodeBlindFrame(frame: BlindFrame): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, frame.type)
  switch (frame.type) {
    case 0:
      encoding.writeVarUint(e, frame.version)
      encoding.writeVarString(e, frame.workspaceId)
      encoding.writeVarString(e, frame.storeId)
      encoding.writeVarUint(e, frame.cursor)
      break
    case 1:
      encoding.writeVarString(e, frame.storeId)
      encoding.writeVarUint(e, frame.snapshotSeq)
      encoding.writeVarUint(e, frame.head)
      encoding.writeVarUint(e, frame.sinceCount)
      encoding.writeVarUint(e, frame.sinceBytes)
      break
    case 2:
      encoding.writeVarString(e, frame.code)
      encoding.writeVarString(e, frame.message)
      break
    case 3:
      encoding.writeVarUint(e, frame.epoch)
      encoding.writeVarUint8Array(e, frame.ciphertext)
      break
    case 4:
      encoding.writeVarUint(e, frame.seq)
      break
    case 5:
      encoding.writeVarUint(e, frame.seq)
      encoding.writeVarUint(e, frame.epoch)
      encoding.writeVarUint8Array(e, frame.ciphertext)
      break
    case 6:
    case 7:
      encoding.writeVarUint(e, frame.covers)
      encoding.writeVarUint(e, frame.epoch)
      encoding.writeVarUint8Array(e, frame.ciphertext)
      break
    case 8:
      encoding.writeVarUint(e, frame.head)
      break
  }
  return encoding.toUint8Array(e)
}

export function decodeBlindFrame(bytes: Uint8Array): BlindFrame {
  const d = decoding.createDecoder(bytes)
  let frame: BlindFrame
  try {
    const type = decoding.readVarUint(d)
    switch (type) {
      case 0:
        frame = {
          type,
          version: decoding.readVarUint(d),
          workspaceId: decoding.readVarString(d),
          storeId: decoding.readVarString(d),
          cursor: decoding.readVarUint(d),
        }
        break
      case 1:
        frame = {
          type,
          storeId: decoding.readVarString(d),
          snapshotSeq: decoding.readVarUint(d),
          head: decoding.readVarUint(d),
          sinceCount: decoding.readVarUint(d),
          sinceBytes: decoding.readVarUint(d),
        }
        break
      case 2:
        frame = { type, code: decoding.readVarString(d), message: decoding.readVarString(d) }
        break
      case 3:
        frame = { type, epoch: decoding.readVarUint(d), ciphertext: decoding.readVarUint8Array(d) }
        break
      case 4:
        frame = { type, seq: decoding.readVarUint(d) }
        break
      case 5:
        frame = { type, seq: decoding.readVarUint(d), epoch: decoding.readVarUint(d), ciphertext: decoding.readVarUint8Array(d) }
        break
      case 6:
      case 7:
        frame = { type, covers: decoding.readVarUint(d), epoch: decoding.readVarUint(d), ciphertext: decoding.readVarUint8Array(d) }
        break
      case 8:
        frame = { type, head: decoding.readVarUint(d) }
        break
      default:
        throw new KitsyncError('PROTOCOL_ERROR', `unknown blind frame type ${type}`)
    }
  } catch (err) {
    if (err instanceof KitsyncError) throw err
    throw new KitsyncError('PROTOCOL_ERROR', 'truncated blind frame', { cause: err })
  }
  if (decoding.hasContent(d)) throw new KitsyncError('PROTOCOL_ERROR', 'trailing bytes in blind frame')
  return frame
}
