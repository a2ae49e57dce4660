import { FILE_REF_FORMAT, FRAME_HEADER_BYTES, frame, unframe } from './framing.js'
import type { SnapshotFileRef } from './snapshot-files.js'

/**
 * Key layout (collection names never contain '!', so prefixes do not overlap):
 *   m!<name>             collection metadata (JSON: kind, createdAt, layout), written with its first update
 *   s!<name>             snapshot: one Yjs update holding everything compacted so far, or (format 2) a
 *                        reference to the file that holds it (see SnapshotFiles); ignored without
 *                        m!<name> (a peer's copy whose adoption was interrupted, see CollectionLog.adopt)
 *   v!<name>             no longer written (a state vector of the snapshot that nothing read; compaction deletes it)
 *   u!<name>!<seq:16hex> one Yjs update written after the snapshot
 *   l!<key>              a value of this device only (e.g. the revoked ids it has seen)
 * Rows derived from a collection's records (see daemon/derived-rows.ts), each written only in
 * the same batch as the update or snapshot it is derived from:
 *   r!<name>!<key>       the record as read: {v: value, t: greatest stamp} (absent: no record)
 *   n!<name>             checkpoint: {seq, records, rules}, the seq of the last update the rows reflect.
 *                        Between m! and u! on purpose: a key written with every append that sorted
 *                        after u! would make each new LevelDB table span the logs and snapshots of
 *                        every collection between, and one before m! would stretch a table of this
 *                        collection over other collections' metadata (a damaged block then fails
 *                        reads of those; see test/faults/leveldb-damage.test.ts).
 *   h!<name>!<key>\0<stamp>, c!<name>!<stamp>\0<key>   a record's history (store/history-*.ts)
 * Appends and compactions are atomic batches, so a crash leaves either the old or the new state.
 */
const SEQ_WIDTH = 16
export const metaKey = (name: string): string => `m!${name}`
export const snapshotKey = (name: string): string => `s!${name}`
export const vectorKey = (name: string): string => `v!${name}`
export const updatePrefix = (name: string): string => `u!${name}!`
export const updateKey = (name: string, seq: number): string => updatePrefix(name) + seq.toString(16).padStart(SEQ_WIDTH, '0')
export const localKey = (key: string): string => `l!${key}`
export const rowPrefix = (name: string): string => `r!${name}!`
export const rowKey = (name: string, key: string): string => rowPrefix(name) + key
/** The index rows of `name`, in key order. */
export const rowRange = (name: string): { gte: string; lt: string } => ({ gte: rowPrefix(name), lt: `r!${name}"` })
export const checkpointKey = (name: string): string => `n!${name}`
/** Every key of the derived rows of `name` with this one-letter prefix (r, h, c). */
export const derivedRange = (prefix: 'r' | 'h' | 'c', name: string): { gte: string; lt: string } => ({ gte: `${prefix}!${name}!`, lt: `${prefix}!${name}"` })
/** Every metadata key ('"' follows '!'): the names of the stored collections. */
export const META_RANGE = { gte: 'm!', lt: 'm"' } as const
/** The log entries of `name`, in sequence order. */
export const updateRange = (name: string): { gte: string; lt: string } => ({ gte: updatePrefix(name), lt: `u!${name}"` })
/** The sequence number of a key of `updateRange(name)`. */
export const seqOf = (name: string, key: string): number => parseInt(key.slice(updatePrefix(name).length), 16)

export type BatchOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

/** What the rows derived from a collection reflect (`n!<name>`). */
export interface Checkpoint {
  /** The seq of the last update the rows reflect (-1: none, or only the snapshot). */
  seq: number
  /** How many records the collection holds at that update. */
  records: number
  /** The read rules (policy, field types) the rows were derived under: rows derived under others are built anew. */
  rules?: string
}

/** The checkpoint of a stored value, or undefined if it is not one (damaged). */
export function checkpointOf(payload: Uint8Array): Checkpoint | undefined {
  try {
    const c = parseJson(payload) as Partial<Checkpoint>
    if (typeof c.seq !== 'number' || typeof c.records !== 'number') return undefined
    return { seq: c.seq, records: c.records, ...(typeof c.rules === 'string' ? { rules: c.rules } : {}) }
  } catch {
    return undefined
  }
}

export interface CollectionMeta {
  kind: string
  createdAt: number
  /** Where its records live in its document (core/record-layout.ts); absent: a collection stored before layouts (1), or not known when written. */
  layout?: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A JSON value framed (metadata, local values). */
export const jsonValue = (value: unknown): Uint8Array => frame(encoder.encode(JSON.stringify(value)))
/** The payload of a framed JSON value, parsed (throws if it is not JSON). */
export const parseJson = (payload: Uint8Array): unknown => JSON.parse(decoder.decode(payload)) as unknown
/** The metadata a collection is stored with from its first write on. */
export const newMeta = (createdAt: number, layout?: number): CollectionMeta => ({ kind: 'records', createdAt, ...(layout === undefined ? {} : { layout }) })

/** A snapshot as LevelDB stores it: the framed update, or a reference to the file written with it. */
export interface StoredSnapshot {
  value: Uint8Array
  file?: SnapshotFileRef
  /** What the snapshot counts for in the collection's size. */
  bytes: number
}

/** The reference a format-2 snapshot value holds, or undefined if it is not one (or damaged). */
export function fileRefOf(value: Uint8Array): SnapshotFileRef | undefined {
  const payload = unframe(value, FILE_REF_FORMAT)
  if (payload === undefined) return undefined
  try {
    const ref = JSON.parse(decoder.decode(payload)) as Partial<SnapshotFileRef>
    return typeof ref.file === 'string' && typeof ref.bytes === 'number' && typeof ref.crc === 'number'
      ? { file: ref.file, bytes: ref.bytes, crc: ref.crc }
      : undefined
  } catch {
    return undefined
  }
}

/** The format-2 snapshot value that refers to the file `ref`. */
export function storedFile(ref: SnapshotFileRef): StoredSnapshot {
  return { value: frame(encoder.encode(JSON.stringify(ref)), FILE_REF_FORMAT), file: ref, bytes: ref.bytes + FRAME_HEADER_BYTES }
}
