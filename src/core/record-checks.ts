import { KitsyncError } from './errors.js'
import { isJsonObject, jsonEqual, utf8Length, type JsonValue } from './json.js'
import { assertFieldName } from './names.js'
import { fieldTypeOf, type RecordView } from './record-slots.js'

/**
 * What a write must pass before any of it is made (a Yjs transaction cannot be rolled back):
 * the shape each field type takes, set elements, the size of the record.
 */

/** Throws what writing `value` to `field` of a record in `collection` would violate (set and log fields only). */
export function checkField(view: RecordView, collection: string, field: string, value: JsonValue, current: JsonValue | undefined): void {
  assertFieldName(field)
  const type = fieldTypeOf(view, field)
  if (type === 'register') return
  if (!Array.isArray(value)) throw new KitsyncError('INVALID_ARGUMENT', `${field} in ${collection} is a ${type === 'log' ? 'list' : 'set'}: give an array`)
  const before = isJsonObject(current) && Array.isArray(current[field]) ? (current[field] as JsonValue[]) : []
  if (type === 'log') {
    if (value.length < before.length || !before.every((v, i) => jsonEqual(v, value[i]))) {
      throw new KitsyncError('APPEND_ONLY', `${field} in ${collection} is append-only: entries can be added at the end, not changed or removed`)
    }
    return
  }
  for (const e of value) {
    if (typeof e !== 'string') throw new KitsyncError('INVALID_ARGUMENT', `${field} in ${collection} is a set of strings`)
    assertElement(e)
  }
  const next = new Set(value as string[])
  const removed = before.filter((e) => typeof e === 'string' && !next.has(e))
  if (removed.length > 0 && type === 'growset')
    throw new KitsyncError('APPEND_ONLY', `${field} in ${collection} is append-only: ${JSON.stringify(removed[0])} cannot be removed`)
}

/** Throws RECORD_TOO_LARGE when the record `key` holding `next` is over `maxRecordBytes` as JSON. */
export function checkRecordSize(collection: string, key: string, next: JsonValue, maxRecordBytes: number): void {
  // Most records are far below the limit: a bound on their JSON length settles it without
  // writing them out (a UTF-8 character takes at most 3 bytes per UTF-16 unit).
  if ((jsonLengthBound(next) + 6 * key.length + 4) * 3 <= maxRecordBytes) return
  const size = utf8Length(JSON.stringify({ [key]: next }))
  if (size > maxRecordBytes) {
    throw new KitsyncError('RECORD_TOO_LARGE', `record ${JSON.stringify(key)} in ${collection} is ${size} bytes, over the limit of ${maxRecordBytes}`, {
      details: { collection, size, limit: maxRecordBytes },
    })
  }
}

/** An upper bound on the length of JSON.stringify(value), in UTF-16 units (every character escaped as \uXXXX). */
function jsonLengthBound(value: JsonValue): number {
  if (typeof value === 'string') return 6 * value.length + 2
  if (typeof value !== 'object' || value === null) return 24
  let n = 2
  if (Array.isArray(value)) {
    for (const v of value) n += jsonLengthBound(v) + 1
    return n
  }
  for (const k in value) n += 6 * k.length + 4 + jsonLengthBound(value[k] as JsonValue)
  return n
}

export function assertElement(e: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof e !== 'string' || e.length === 0 || e.length > 256 || /[\u0000-\u001f\u007f]/.test(e)) {
    throw new KitsyncError('INVALID_ARGUMENT', `invalid set element ${JSON.stringify(e)}: use 1-256 characters without control characters`)
  }
}
