import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'
import type { InterestRule } from '../core/selection.js'

/**
 * Frames of the sync protocol /kitsync/sync/2.0.0 (see docs/PROTOCOL.md). Each frame is one
 * length-prefixed message on the stream; its body starts with a varuint frame type.
 *
 * Version 2 has the frames of version 1; what changed is what the updates hold: a collection
 * created by a version-2 device keeps its records in layout 2 (docs/RECORDS.md), which a
 * version-1 device would merge without reading. A version-1 peer is answered on its protocol
 * id with one ERROR frame (OLD_SYNC_REFUSAL) and the stream is closed.
 */
export const SYNC_PROTOCOL_ID = '/kitsync/sync/2.0.0'
/** The major version, the one the protocol id carries. */
export const SYNC_PROTOCOL_MAJOR = 2
/**
 * HELLO's `version`, the revision within the major one. 3 added the frames of units and blobs
 * (5-10, unit-frames.ts) and of history (20-22, history-frames.ts), which a device of revision 2
 * refuses as unknown: the two meet VERSION_MISMATCH at HELLO instead, and a joiner of revision 2
 * is refused before it is admitted. Revision 2 never shipped with a release.
 */
export const SYNC_PROTOCOL_VERSION = 3
/** Protocol ids of earlier versions: handled only to refuse them (net/sync-version.ts). */
export const OLD_SYNC_PROTOCOL_IDS = ['/kitsync/sync/1.0.0'] as const

export const FrameType = {
  HELLO: 0,
  SYNC: 1,
  ERROR: 2,
  INTEREST: 3,
  REVOKED: 4,
} as const

/** y-protocols message types carried inside a SYNC frame. */
export const SyncStep = {
  STEP1: 0,
  STEP2: 1,
  UPDATE: 2,
} as const

export type Frame =
  | { type: typeof FrameType.HELLO; version: number; workspaceId: string; collections: string[] }
  | { type: typeof FrameType.SYNC; collection: string; step: number; payload: Uint8Array }
  | { type: typeof FrameType.ERROR; code: string; message: string }
  | { type: typeof FrameType.INTEREST; rules: InterestRule[] }
  | RevokedFrame

/**
 * A member's answer to a revoked device that opens the sync protocol: why it is refused, signed
 * with the member's device key (Ed25519, the key of its PeerId) over revokedSignatureInput.
 */
export interface RevokedFrame extends RevokedStatement {
  type: typeof FrameType.REVOKED
  signature: Uint8Array
}

/** What a REVOKED frame states: the revocation record of `_revoked`, and who says so. */
export interface RevokedStatement {
  workspaceId: string
  /** The revoked device (the receiver). */
  revoked: string
  /** The member that revoked it, and when (ms since the epoch), as `_revoked` records it. */
  revokedBy: string
  revokedAt: number
  /** The reason given, "" for none. */
  reason: string
  /** The member that sends and signs the frame. */
  signer: string
}

const REVOKED_CONTEXT = 'kitsync-revoked-v1'
const MAX_REASON = 1000
const MAX_SIGNATURE = 1024

/** The bytes a REVOKED frame's signature covers: a context string, then the statement's fields, length-prefixed. */
export function revokedSignatureInput(s: RevokedStatement): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarString(e, REVOKED_CONTEXT)
  writeRevokedStatement(e, s)
  return encoding.toUint8Array(e)
}

/** A REVOKED statement's fields, in the order both the frame and its signature input carry them. */
function writeRevokedStatement(e: encoding.Encoder, s: RevokedStatement): void {
  encoding.writeVarString(e, s.workspaceId)
  encoding.writeVarString(e, s.revoked)
  encoding.writeVarString(e, s.revokedBy)
  encoding.writeVarUint(e, s.revokedAt)
  encoding.writeVarString(e, s.reason)
  encoding.writeVarString(e, s.signer)
}

/** What a device of this version tells one of an older version (on the old sync protocol id, or when it tries to pair). */
export const OLD_VERSION_MESSAGE = `this device speaks sync ${SYNC_PROTOCOL_MAJOR}; update kitsync`
/** The one frame a device sends on an old protocol id before it closes the stream. */
export const OLD_SYNC_REFUSAL: Frame = { type: FrameType.ERROR, code: 'VERSION_MISMATCH', message: OLD_VERSION_MESSAGE }

export const MAX_COLLECTIONS_IN_HELLO = 100_000
export const MAX_INTEREST_RULES = 10_000
const MAX_NAME = 256

/**
 * A frame as the buffers that make it up, back to back: a SYNC frame as its header and its
 * payload, not copied together (a collection sent whole is megabytes, and copying them into
 * fresh memory was a tenth of a new device's catch-up on the sender); others as one buffer.
 */
export function encodeFrameParts(frame: Frame): Uint8Array[] {
  return frame.type === FrameType.SYNC ? [syncHeader(frame), frame.payload] : [encodeFrame(frame)]
}

/** A SYNC frame up to its payload: type, collection, step, payload length. */
function syncHeader(frame: Extract<Frame, { type: typeof FrameType.SYNC }>): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, frame.type)
  encoding.writeVarString(e, frame.collection)
  encoding.writeVarUint(e, frame.step)
  encoding.writeVarUint(e, frame.payload.byteLength)
  return encoding.toUint8Array(e)
}

export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.type === FrameType.SYNC) {
    // The payload (megabytes when a collection is sent whole) is copied once, behind the
    // header, rather than into the encoder's buffers and out again.
    const head = syncHeader(frame)
    const out = new Uint8Array(head.byteLength + frame.payload.byteLength)
    out.set(head)
    out.set(frame.payload, head.byteLength)
    return out
  }
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, frame.type)
  switch (frame.type) {
    case FrameType.HELLO:
      encoding.writeVarUint(e, frame.version)
      encoding.writeVarString(e, frame.workspaceId)
      encoding.writeVarUint(e, frame.collections.length)
      for (const name of frame.collections) encoding.writeVarString(e, name)
      break
    case FrameType.ERROR:
      encoding.writeVarString(e, frame.code)
      encoding.writeVarString(e, frame.message)
      break
    case FrameType.INTEREST:
      encoding.writeVarUint(e, frame.rules.length)
      for (const rule of frame.rules) {
        encoding.writeVarUint(e, rule.include ? 1 : 0)
        encoding.writeVarString(e, rule.pattern)
      }
      break
    case FrameType.REVOKED:
      writeRevokedStatement(e, frame)
      encoding.writeVarUint8Array(e, frame.signature)
      break
  }
  return encoding.toUint8Array(e)
}

/** Decode one frame; anything malformed is a PROTOCOL_ERROR (the caller closes the stream). */
export function decodeFrame(bytes: Uint8Array): Frame {
  try {
    const d = decoding.createDecoder(bytes)
    const type = decoding.readVarUint(d)
    let frame: Frame
    switch (type) {
      case FrameType.HELLO: {
        const version = decoding.readVarUint(d)
        const workspaceId = readName(d)
        const n = decoding.readVarUint(d)
        if (n > MAX_COLLECTIONS_IN_HELLO) throw new Error('too many collections')
        const collections: string[] = []
        for (let i = 0; i < n; i++) collections.push(readName(d))
        frame = { type, version, workspaceId, collections }
        break
      }
      case FrameType.SYNC: {
        const collection = readName(d)
        const step = decoding.readVarUint(d)
        if (step !== SyncStep.STEP1 && step !== SyncStep.STEP2 && step !== SyncStep.UPDATE) throw new Error(`unknown sync step ${step}`)
        frame = { type, collection, step, payload: decoding.readVarUint8Array(d) }
        break
      }
      case FrameType.ERROR:
        frame = { type, code: readName(d), message: decoding.readVarString(d).slice(0, 1000) }
        break
      case FrameType.INTEREST: {
        const n = decoding.readVarUint(d)
        if (n > MAX_INTEREST_RULES) throw new Error('too many interest rules')
        const rules: InterestRule[] = []
        for (let i = 0; i < n; i++) {
          const flag = decoding.readVarUint(d)
          if (flag > 1) throw new Error(`interest rule flag ${flag}`)
          const pattern = readName(d)
          if (!/^[A-Za-z0-9._*?-]{1,64}$/.test(pattern)) throw new Error(`invalid interest pattern ${JSON.stringify(pattern)}`)
          rules.push({ include: flag === 1, pattern })
        }
        frame = { type, rules }
        break
      }
      case FrameType.REVOKED: {
        const workspaceId = readName(d)
        const revoked = readName(d)
        const revokedBy = readName(d)
        const revokedAt = decoding.readVarUint(d)
        const reason = decoding.readVarString(d)
        if (reason.length > MAX_REASON) throw new Error('reason too long')
        const signer = readName(d)
        const signature = decoding.readVarUint8Array(d)
        if (signature.byteLength > MAX_SIGNATURE) throw new Error('signature too long')
        frame = { type, workspaceId, revoked, revokedBy, revokedAt, reason, signer, signature }
        break
      }
      default:
        throw new Error(`unknown frame type ${type}`)
    }
    if (decoding.hasContent(d)) throw new Error('trailing bytes')
    return frame
  } catch (err) {
    throw new KitsyncError('PROTOCOL_ERROR', `malformed sync frame: ${(err as Error).message}`, { cause: err })
  }
}

function readName(d: decoding.Decoder): string {
  const s = decoding.readVarString(d)
  if (s.length > MAX_NAME) throw new Error('name too long')
  return s
}
