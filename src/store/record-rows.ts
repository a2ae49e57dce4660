import { KitsyncError } from '../core/errors.js'
import type { JsonValue } from '../core/json.js'
import { fileRefOf, jsonValue, parseJson, rowKey, rowPrefix, rowRange, snapshotKey, storedFile, updateRange, type BatchOp } from './doc-layout.js'
import { FILE_REF_FORMAT, unframe } from './framing.js'
import { corruption, readFailure } from './level-errors.js'
import type { BinaryLevel } from './level.js'

/**
 * The index rows of a collection's records (`r!NAME!KEY`, see doc-layout.ts): each record as
 * its collection reads it, so `get`, `keys` and `list` are answered without loading the
 * collection's document. Written only with the update they come from (daemon/record-index-rows.ts).
 */

/** A record's index row: its value as read, and the greatest stamp among its slots. */
export interface RecordRow {
  v: JsonValue
  t: string
}

export const rowPut = (name: string, key: string, row: RecordRow): BatchOp => ({ type: 'put', key: rowKey(name, key), value: jsonValue(row) })
export const rowDel = (name: string, key: string): BatchOp => ({ type: 'del', key: rowKey(name, key) })

/** The row a stored value holds, or undefined when it is damaged. */
export function rowOf(value: Uint8Array): RecordRow | undefined {
  const payload = unframe(value)
  if (payload === undefined) return undefined
  try {
    const row = parseJson(payload) as Partial<RecordRow> | null
    return row !== null && typeof row === 'object' && 'v' in row && typeof row.t === 'string' ? { v: row.v as JsonValue, t: row.t } : undefined
  } catch {
    return undefined
  }
}

const damaged = (name: string, key: string): KitsyncError =>
  corruption(name, `the index row of record ${JSON.stringify(key)} is damaged (run kitsync check --repair)`)

/** The row of one record (undefined: no record); DATA_CORRUPTION when it is damaged. */
export async function readRow(db: BinaryLevel, name: string, key: string): Promise<RecordRow | undefined> {
  let raw: Uint8Array | undefined
  try {
    raw = await db.get(rowKey(name, key))
  } catch (err) {
    throw readFailure(name, err)
  }
  if (raw === undefined) return undefined
  const row = rowOf(raw)
  if (row === undefined) throw damaged(name, key)
  return row
}

/** The keys of the stored rows of a collection, in key order. */
export async function storedRowKeys(db: BinaryLevel, name: string): Promise<string[]> {
  const keys: string[] = []
  const skip = rowPrefix(name).length
  try {
    for await (const key of db.keys(rowRange(name))) keys.push(key.slice(skip))
  } catch (err) {
    throw readFailure(name, err)
  }
  return keys
}

/**
 * Every row of a collection, in key order. `strict`: a damaged row fails with DATA_CORRUPTION;
 * otherwise it is returned as undefined (for `check`, which reports it).
 */
export async function readRows(db: BinaryLevel, name: string, strict = true): Promise<[string, RecordRow | undefined][]> {
  const out: [string, RecordRow | undefined][] = []
  const skip = rowPrefix(name).length
  try {
    for await (const [k, value] of db.iterator(rowRange(name))) {
      const key = k.slice(skip)
      const row = rowOf(value)
      if (row === undefined && strict) throw damaged(name, key)
      out.push([key, row])
    }
  } catch (err) {
    if (err instanceof KitsyncError) throw err
    throw readFailure(name, err)
  }
  return out
}

/** What a collection counts for in `list` without loading it: its snapshot and log as stored (see CollectionLog.stats). */
export async function storedBytes(db: BinaryLevel, name: string): Promise<number> {
  try {
    let bytes = 0
    const snap = await db.get(snapshotKey(name))
    if (snap !== undefined) {
      const ref = snap[0] === FILE_REF_FORMAT ? fileRefOf(snap) : undefined
      bytes += ref === undefined ? snap.byteLength : storedFile(ref).bytes
    }
    for await (const value of db.values(updateRange(name))) bytes += value.byteLength
    return bytes
  } catch (err) {
    throw readFailure(name, err)
  }
}
