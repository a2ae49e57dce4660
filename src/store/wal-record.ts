import type { BatchOp } from './doc-layout.js'

/**
 * The rest of a write-ahead record (see wal.ts) after its length and crc32. Two kinds:
 *
 * - plain (written before rows went with updates): [name length: u8, 1..255][name][update]
 * - sequenced: [0][1][name length: u8][name][seq: f64 BE][rows length: u32 BE][rows][update]
 *
 * A sequenced record names the sequence number its update takes in the collection's log (an
 * empty update: rows only, reflecting the collection up to that seq), and may carry the rows
 * derived from the appends so far (daemon/derived-rows.ts) with the record count after them:
 * after a crash they are stored with the update, so the collection's rows are current without
 * loading its document (see DocStore.recover). Rows: [records: f64 BE, -1 unknown][ops: u32 BE]
 * then per op [put 1 | del 0][key length: u16 BE][key][value length: u32 BE][value] (no value for a del).
 */

export interface WalRows {
  /** The records the collection holds after the appends the rows come from; undefined: unknown (no checkpoint kept). */
  records: number | undefined
  ops: BatchOp[]
}

export interface WalEntry {
  collection: string
  /** Empty in a record of rows only. */
  update: Uint8Array
  /** The seq of the update in its collection's log (sequenced records). */
  seq?: number
  rows?: WalRows
}

const SEQUENCED = 1

/**
 * The rest of a record for `entry`: plain without a seq, else sequenced; `at` bytes are left
 * before it (for the record's length and crc32: one buffer per record), which `alloc` gives.
 */
export function encodeRest(
  collection: string,
  update: Uint8Array,
  seq?: number,
  rows?: WalRows,
  at = 0,
  alloc: (bytes: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  const nameBytes = Buffer.byteLength(collection, 'utf8')
  if (seq === undefined) {
    const out = alloc(at + 1 + nameBytes + update.byteLength)
    out[at] = nameBytes
    out.write(collection, at + 1, 'utf8')
    out.set(update, at + 1 + nameBytes)
    return out
  }
  let rowsBytes = 0
  if (rows !== undefined) {
    rowsBytes = 12
    for (const op of rows.ops) {
      const keyBytes = Buffer.byteLength(op.key, 'utf8')
      // (No key is this long; should one be, the rows are left out and derived again after a crash.)
      if (keyBytes > 0xffff) return encodeRest(collection, update, seq, undefined, at, alloc)
      rowsBytes += 3 + keyBytes + (op.type === 'put' ? 4 + op.value.byteLength : 0)
    }
  }
  const head = 3 + nameBytes + 8 + 4
  const rest = alloc(at + head + rowsBytes + update.byteLength)
  rest[at] = 0
  rest[at + 1] = SEQUENCED
  rest[at + 2] = nameBytes
  rest.write(collection, at + 3, 'utf8')
  at += 3 + nameBytes
  rest.writeDoubleBE(seq, at)
  rest.writeUInt32BE(rowsBytes, at + 8)
  at += 12
  if (rows !== undefined) {
    rest.writeDoubleBE(rows.records ?? -1, at)
    rest.writeUInt32BE(rows.ops.length, at + 8)
    at += 12
    for (const op of rows.ops) {
      rest[at] = op.type === 'put' ? 1 : 0
      const keyBytes = rest.write(op.key, at + 3, 'utf8')
      rest.writeUInt16BE(keyBytes, at + 1)
      at += 3 + keyBytes
      if (op.type === 'put') {
        rest.writeUInt32BE(op.value.byteLength, at)
        rest.set(op.value, at + 4)
        at += 4 + op.value.byteLength
      }
    }
  }
  rest.set(update, at)
  return rest
}

/** Where the name of the record whose rest starts at `at` is: [start, length], or undefined if the rest cannot hold it. */
export function nameOf(bytes: Buffer, at: number, restLength: number): [number, number] | undefined {
  const first = bytes[at] as number
  if (first !== 0) return 1 + first <= restLength ? [at + 1, first] : undefined
  if (restLength < 3 || bytes[at + 1] !== SEQUENCED) return undefined
  const length = bytes[at + 2] as number
  return length >= 1 && 3 + length + 12 <= restLength ? [at + 3, length] : undefined
}

/**
 * The entry of a whole record's rest (its crc32 checked). Its update and row values are views of
 * `bytes` (no copies), and its rows are decoded when first read: an open after a crash reads
 * only the rows of the records LevelDB does not have (wal-recovery.ts). Rows that do not parse
 * read as undefined (the update is then taken without them).
 */
export function decodeRest(bytes: Buffer, at: number, end: number): WalEntry {
  const [nameAt, nameLength] = nameOf(bytes, at, end - at) as [number, number]
  const collection = bytes.toString('utf8', nameAt, nameAt + nameLength)
  if (bytes[at] !== 0) return { collection, update: view(bytes, nameAt + nameLength, end) }
  const p = nameAt + nameLength
  const seq = bytes.readDoubleBE(p)
  const rowsBytes = bytes.readUInt32BE(p + 8)
  const updateAt = p + 12 + rowsBytes
  if (updateAt > end) return { collection, update: new Uint8Array(0) }
  const entry: WalEntry = { collection, update: view(bytes, updateAt, end), seq }
  if (rowsBytes === 0) return entry
  let rows: WalRows | undefined | null = null
  Object.defineProperty(entry, 'rows', { enumerable: true, get: () => (rows === null ? (rows = decodeRows(bytes, p + 12, updateAt)) : rows) })
  return entry
}

/** The rows between `at` and `end` (see the record layout above), or undefined if they do not parse. */
function decodeRows(bytes: Buffer, at: number, end: number): WalRows | undefined {
  try {
    let p = at
    const records = bytes.readDoubleBE(p)
    const count = bytes.readUInt32BE(p + 8)
    p += 12
    const ops: BatchOp[] = []
    for (let i = 0; i < count; i++) {
      const type = bytes[p]
      const keyBytes = bytes.readUInt16BE(p + 1)
      const key = bytes.toString('utf8', p + 3, p + 3 + keyBytes)
      p += 3 + keyBytes
      if (type === 1) {
        const valueBytes = bytes.readUInt32BE(p)
        if (p + 4 + valueBytes > end) throw new RangeError('rows overrun')
        ops.push({ type: 'put', key, value: view(bytes, p + 4, p + 4 + valueBytes) })
        p += 4 + valueBytes
      } else ops.push({ type: 'del', key })
      if (p > end) throw new RangeError('rows overrun')
    }
    if (p !== end) throw new RangeError('rows length mismatch')
    return { records: records < 0 ? undefined : records, ops }
  } catch {
    // Written whole (its crc32 holds) but not parsed: the update is kept, its rows are derived again at load.
    return undefined
  }
}

/** Bytes `start` to `end` of `bytes` as a plain Uint8Array, not a copy. */
const view = (bytes: Buffer, start: number, end: number): Uint8Array => new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start)
