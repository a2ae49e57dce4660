import { isJsonObject, jsonEqual, type JsonValue } from './json.js'
import type { IndexEntry } from './record-index.js'
import { valueOf } from './record-resolve.js'
import { flatKey, HEADER, type RecordView, type Slot, type SlotSource } from './record-slots.js'

/**
 * The versions of a record, worked out from its slots (layout in record-slots.ts): every write
 * leaves its slots with the write's stamp `t`, and the stamp's node part is the writer's device
 * tag. So a version is a stamp among a record's slots; its value is the record read from the
 * slots no newer than that stamp (what a device holding them saw right after the write), and its
 * fields are the fields of the slots carrying that stamp. Pure: reads the slots and writes nothing.
 */

export interface RecordVersion {
  /** The write's stamp (unique: a writer never makes one stamp twice). */
  stamp: string
  /** The writer's device tag (the stamp's node part). */
  writer: string
  /** The record after the write; undefined for a delete. */
  value: JsonValue | undefined
  deleted: boolean
  /** A whole-record write or a delete (else: a field write, set add or list append). */
  whole: boolean
  /** Names of the fields the write changed (a whole write: those that differ from the version before, as far as the slots tell). */
  fields: string[]
}

/** The slots of a view no newer than `stamp`. */
function slotsUpTo(slots: SlotSource, stamp: string): SlotSource {
  return {
    get(flat: string): Slot | undefined {
      const s = slots.get(flat)
      return s !== undefined && s.t <= stamp ? s : undefined
    },
  }
}

/** The slots of a view older than `stamp`. */
function slotsBefore(slots: SlotSource, stamp: string): SlotSource {
  return {
    get(flat: string): Slot | undefined {
      const s = slots.get(flat)
      return s !== undefined && s.t < stamp ? s : undefined
    },
  }
}

/** The record's value as it read right after the write stamped `stamp` (undefined: deleted or not there). */
export function valueAt(view: RecordView, key: string, rec: IndexEntry, stamp: string): JsonValue | undefined {
  return valueOf({ ...view, slots: slotsUpTo(view.slots, stamp) }, key, rec)
}

/** Top-level fields whose values differ between two versions of a record (a non-object counts as no fields). */
export function changedFields(before: JsonValue | undefined, after: JsonValue | undefined): string[] {
  const a = isJsonObject(before) ? before : {}
  const b = isJsonObject(after) ? after : {}
  const out = new Set<string>()
  for (const f of Object.keys(a)) if (!Object.hasOwn(b, f) || !jsonEqual(a[f], b[f])) out.add(f)
  for (const f of Object.keys(b)) if (!Object.hasOwn(a, f)) out.add(f)
  return [...out].sort()
}

function slotsOf(rec: IndexEntry): Iterable<[string, Iterable<string>]> {
  return typeof rec === 'string' ? [[HEADER, [rec]]] : rec
}

/**
 * The versions `stamps` of a record (stamps its slots no longer hold are skipped: a write that
 * a later one in the same transaction replaced). Sorted by stamp, oldest first.
 */
export function versionsOf(view: RecordView, key: string, rec: IndexEntry | undefined, stamps: Iterable<string>): RecordVersion[] {
  if (rec === undefined) return []
  // (Stamps of slots: their format is checked where they are shown, not per write.)
  const wanted = new Set<string>(stamps)
  if (wanted.size === 0) return []
  // stamp -> what its slots say
  const found = new Map<string, { fields: Set<string>; whole: boolean; deleted: boolean }>()
  for (const [field, slots] of slotsOf(rec)) {
    for (const slot of slots) {
      const s = view.slots.get(flatKey(key, field, slot))
      if (s === undefined || !wanted.has(s.t)) continue
      let v = found.get(s.t)
      if (v === undefined) found.set(s.t, (v = { fields: new Set(), whole: false, deleted: false }))
      if (field !== HEADER) v.fields.add(field)
      else {
        if (s.d === 1) v.deleted = v.whole = true
        if (s.f === 1) v.whole = true
        if (s.r !== undefined) for (const f of Object.keys(s.r)) v.fields.add(f)
      }
    }
  }
  const out: RecordVersion[] = []
  for (const [stamp, v] of [...found].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const value = v.deleted ? undefined : valueAt(view, key, rec, stamp)
    // A whole write (or a delete) changed what differs from the version before it, as far as the
    // older slots still tell: a writer's own earlier version is gone, replaced by this one, so
    // a reader that holds the previous entry compares with it instead.
    const fields = v.whole ? changedFields(valueOf({ ...view, slots: slotsBefore(view.slots, stamp) }, key, rec), value) : [...v.fields].sort()
    out.push({ stamp, writer: stamp.slice(stamp.lastIndexOf('.') + 1), value, deleted: v.deleted, whole: v.whole, fields })
  }
  return out
}
