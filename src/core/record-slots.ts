import type { JsonObject, JsonValue } from './json.js'
import type { ConflictPolicy } from './workspace-types.js'

/**
 * Layout: one flat Y.Map named `records` whose keys are `<key>\0<field>\0<slot>`. Every field of
 * every record is its own small CRDT, so two devices that create or edit the same record
 * concurrently merge field by field, and every value carries the hybrid-logical-clock stamp
 * (`t`) of its write, so "latest" means latest by clock, not by device id:
 *
 *   `<key>\0\0=<writer>`       record header of one writer: `{t, f?: 1 (full write), d?: 1 (delete),
 *                              $?: value (non-object record), r?: {field: value} (the plain fields of a full write)}`
 *   `<key>\0<field>\0=<writer>` one field written on its own: `{t, v}`
 *                              A field's value is the one with the largest `t` among the field slots and
 *                              the headers' `r`. A write replaces the slots it has seen, so two values
 *                              of a field exist only after concurrent writes.
 *   `<key>\0<field>\0+<elem>`  set field element: `{t}`; add and remove merge (a concurrent add wins)
 *   `<key>\0<field>\0#<t>`     log field entry: `{t, v}`; entries are never lost to a concurrent append
 *
 * A record's value is worked out from its slots (see `resolve` in record-resolve.ts). Fields older
 * than the record's last delete are hidden; with a record-level policy (`latest_wins`, `keep_both`,
 * `ask`) fields older than its last full write are hidden too, so the latest whole version wins.
 * Keys and field names cannot contain control characters, so NUL separates the parts.
 */

export const RECORDS_MAP = 'records'
export const SEP = '\u0000'
/** The field part of a header slot's flat key. */
export const HEADER = ''

export type FieldType = 'register' | 'set' | 'growset' | 'log'

export interface Slot {
  t: string
  /** Field slot: the stamp of the value it replaced (what its writer saw), if any. */
  b?: string
  v?: JsonValue
  f?: 1
  d?: 1
  $?: JsonValue
  r?: JsonObject
}

/** Where a collection's slots are read from, by flat key (its `records` Y.Map). */
export interface SlotSource {
  get(flat: string): Slot | undefined
}

/** A collection as the read rule sees it: its slots and the settings they are read by. */
export interface RecordView {
  readonly slots: SlotSource
  readonly policy: ConflictPolicy
  /** Fields that are not plain registers. */
  readonly fieldTypes: Record<string, FieldType>
}

export function fieldTypeOf(view: RecordView, field: string): FieldType {
  // Own properties only: a field named like an Object.prototype member ("constructor") is a register.
  return Object.hasOwn(view.fieldTypes, field) ? (view.fieldTypes[field] as FieldType) : 'register'
}

export function flatKey(key: string, field: string, slot: string): string {
  return key + SEP + field + SEP + slot
}

/** The record key of a flat map key (undefined if it is not one). */
export function recordKeyOf(flat: string): string | undefined {
  const i = flat.indexOf(SEP)
  return i < 0 || flat.indexOf(SEP, i + 1) < 0 ? undefined : flat.slice(0, i)
}
