import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'

/**
 * Frames of history sync on the sync protocol /kitsync/sync/2.0.0 (docs/PROTOCOL.md, "History").
 * They continue the frame types of sync-frames.ts (0-4) and unit-frames.ts (5-10) from 20 on, on
 * the same stream: a session tells them apart by their first varuint (isHistoryFrame).
 *
 * A collection's history entries are immutable items named `KEY\0STAMP` (docs/RECORDS.md,
 * "History"), ordered by their UTF-8 bytes. Range-based set reconciliation over them:
 *   HISTORY_RANGES  ranges of the item space from `lower`, each up to its `upper` bound
 *                   (exclusive; the last may be open), each either SKIP (nothing to do), a
 *                   FINGERPRINT (the count of the sender's items in it and a 16-byte sum of their
 *                   hashes) or IDS (every item of the sender in it). Only items whose stamp's time
 *                   is at least `since` (ms) are counted.
 *   HISTORY_ITEMS   entries the receiver lacks: the item and its entry (JSON, RECORDS.md).
 *   HISTORY_WANT    items the sender lacks and asks for (answered with HISTORY_ITEMS).
 * Items and bounds are written in frame order, each as the length of the prefix (in UTF-8 bytes)
 * it shares with the one before it in the frame, then the rest (items of one record share most).
 */
export const HistoryFrameType = {
  HISTORY_RANGES: 20,
  HISTORY_ITEMS: 21,
  HISTORY_WANT: 22,
} as const

export const RangeMode = { SKIP: 0, FINGERPRINT: 1, IDS: 2 } as const

export const FINGERPRINT_BYTES = 16

/** One range of a HISTORY_RANGES frame; `upper` undefined: open (to the end of the item space). */
export type HistoryRange =
  | { mode: typeof RangeMode.SKIP; upper: string | undefined }
  | { mode: typeof RangeMode.FINGERPRINT; upper: string | undefined; count: number; fingerprint: Uint8Array }
  | { mode: typeof RangeMode.IDS; upper: string | undefined; ids: string[] }

export interface HistoryItem {
  /** `KEY\0STAMP`. */
  id: string
  /** The entry as JSON (UTF-8). */
  entry: Uint8Array
}

export type HistoryFrame =
  | { type: typeof HistoryFrameType.HISTORY_RANGES; collection: string; since: number; lower: string; ranges: HistoryRange[] }
  | { type: typeof HistoryFrameType.HISTORY_ITEMS; collection: string; items: HistoryItem[] }
  | { type: typeof HistoryFrameType.HISTORY_WANT; collection: string; ids: string[] }

const MAX_NAME = 256
/** A record key is at most 1,024 UTF-8 bytes, a stamp about 30: items and bounds are shorter than this (UTF-16 units). */
const MAX_ID = 1100
const MAX_IN_FRAME = 100_000

/** Whether a frame received on a sync stream is one of these (its first varuint). */
export function isHistoryFrame(bytes: Uint8Array): boolean {
  const first = bytes[0]
  return first !== undefined && first >= HistoryFrameType.HISTORY_RANGES && first <= HistoryFrameType.HISTORY_WANT
}

export function encodeHistoryFrame(frame: HistoryFrame): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, frame.type)
  encoding.writeVarString(e, frame.collection)
  const strings = new PrefixWriter(e)
  switch (frame.type) {
    case HistoryFrameType.HISTORY_RANGES:
      encoding.writeVarUint(e, frame.since)
      strings.write(frame.lower)
      encoding.writeVarUint(e, frame.ranges.length)
      for (const r of frame.ranges) {
        encoding.writeVarUint(e, r.mode)
        if (r.mode === RangeMode.FINGERPRINT) {
          encoding.writeVarUint(e, r.count)
          encoding.writeUint8Array(e, r.fingerprint)
        } else if (r.mode === RangeMode.IDS) {
          encoding.writeVarUint(e, r.ids.length)
          for (const id of r.ids) strings.write(id)
        }
        encoding.writeVarUint(e, r.upper === undefined ? 0 : 1)
        if (r.upper !== undefined) strings.write(r.upper)
      }
      break
    case HistoryFrameType.HISTORY_ITEMS:
      encoding.writeVarUint(e, frame.items.length)
      for (const { id, entry } of frame.items) {
        strings.write(id)
        encoding.writeVarUint8Array(e, entry)
      }
      break
    case HistoryFrameType.HISTORY_WANT:
      encoding.writeVarUint(e, frame.ids.length)
      for (const id of frame.ids) strings.write(id)
      break
  }
  return encoding.toUint8Array(e)
}

export function decodeHistoryFrame(bytes: Uint8Array): HistoryFrame {
  try {
    const d = decoding.createDecoder(bytes)
    const type = decoding.readVarUint(d)
    const collection = readString(d, MAX_NAME, 'collection name')
    const strings = new PrefixReader(d)
    let frame: HistoryFrame
    switch (type) {
      case HistoryFrameType.HISTORY_RANGES: {
        const since = decoding.readVarUint(d)
        const lower = strings.read('bound')
        const n = count(d)
        const ranges: HistoryRange[] = []
        for (let i = 0; i < n; i++) ranges.push(readRange(d, strings))
        frame = { type, collection, since, lower, ranges }
        break
      }
      case HistoryFrameType.HISTORY_ITEMS: {
        const n = count(d)
        const items: HistoryItem[] = []
        for (let i = 0; i < n; i++) items.push({ id: readId(strings), entry: decoding.readVarUint8Array(d) })
        frame = { type, collection, items }
        break
      }
      case HistoryFrameType.HISTORY_WANT: {
        const n = count(d)
        const ids: string[] = []
        for (let i = 0; i < n; i++) ids.push(readId(strings))
        frame = { type, collection, ids }
        break
      }
      default:
        throw new Error(`unknown history frame type ${type}`)
    }
    if (decoding.hasContent(d)) throw new Error('trailing bytes')
    return frame
  } catch (err) {
    throw new KitsyncError('PROTOCOL_ERROR', `malformed history frame: ${(err as Error).message}`, { cause: err })
  }
}

function readRange(d: decoding.Decoder, strings: PrefixReader): HistoryRange {
  const mode = decoding.readVarUint(d)
  let range: HistoryRange
  if (mode === RangeMode.SKIP) range = { mode, upper: undefined }
  else if (mode === RangeMode.FINGERPRINT) {
    const n = decoding.readVarUint(d)
    range = { mode, upper: undefined, count: n, fingerprint: decoding.readUint8Array(d, FINGERPRINT_BYTES).slice() }
  } else if (mode === RangeMode.IDS) {
    const n = count(d)
    const ids: string[] = []
    for (let i = 0; i < n; i++) ids.push(readId(strings))
    range = { mode, upper: undefined, ids }
  } else throw new Error(`unknown range mode ${mode}`)
  const bounded = decoding.readVarUint(d)
  if (bounded > 1) throw new Error(`bound flag ${bounded}`)
  if (bounded === 1) range.upper = strings.read('bound')
  return range
}

function count(d: decoding.Decoder): number {
  const n = decoding.readVarUint(d)
  if (n > MAX_IN_FRAME) throw new Error(`${n} items in one frame`)
  return n
}

function readString(d: decoding.Decoder, max: number, what: string): string {
  const s = decoding.readVarString(d)
  if (s.length > max) throw new Error(`${what} too long`)
  return s
}

/** An item: `KEY\0STAMP`, a non-empty key and a stamp, no other control character. */
function readId(strings: PrefixReader): string {
  const id = strings.read('history item')
  if (!isHistoryId(id)) throw new Error(`invalid history item ${JSON.stringify(id.slice(0, 80))}`)
  return id
}

// eslint-disable-next-line no-control-regex
const ID = /^[^\u0000-\u001f\u007f]+\u0000[0-9a-z]{9}\.[0-9a-z]{4}\.[A-Za-z0-9]{1,16}$/

/** Whether `id` is a well-formed history item (`KEY\0STAMP`). */
export function isHistoryId(id: string): boolean {
  return ID.test(id)
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Writes strings as (bytes shared with the previous one: varuint, the rest: varUint8Array). */
class PrefixWriter {
  private previous = new Uint8Array(0)
  constructor(private readonly e: encoding.Encoder) {}

  write(s: string): void {
    const bytes = utf8.encode(s)
    const max = Math.min(bytes.length, this.previous.length)
    let shared = 0
    while (shared < max && bytes[shared] === this.previous[shared]) shared++
    encoding.writeVarUint(this.e, shared)
    encoding.writeVarUint8Array(this.e, bytes.subarray(shared))
    this.previous = bytes
  }
}

class PrefixReader {
  private previous = new Uint8Array(0)
  constructor(private readonly d: decoding.Decoder) {}

  read(what: string): string {
    const shared = decoding.readVarUint(this.d)
    if (shared > this.previous.length) throw new Error(`${what} shares ${shared} bytes of a ${this.previous.length}-byte one`)
    const rest = decoding.readVarUint8Array(this.d)
    if (shared + rest.length > MAX_ID * 3) throw new Error(`${what} too long`)
    const bytes = new Uint8Array(shared + rest.length)
    bytes.set(this.previous.subarray(0, shared))
    bytes.set(rest, shared)
    this.previous = bytes
    const s = fromUtf8.decode(bytes)
    if (s.length > MAX_ID) throw new Error(`${what} too long`)
    return s
  }
}
