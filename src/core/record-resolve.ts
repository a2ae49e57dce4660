import type { JsonObject, JsonValue } from './json.js'
import type { IndexEntry, RecordIndex } from './record-index.js'
import { fieldTypeOf, flatKey, HEADER, SEP, type FieldType, type RecordView, type Slot } from './record-slots.js'
import type { ConflictVersion } from './workspace-types.js'

/**
 * The read rule: a record's value worked out from its slots (layout in record-slots.ts), and the
 * conflicts found among them. Pure: it reads the slots and the collection's settings, and writes
 * nothing.
 */

/** One value of a plain field: from a field slot (`=writer`) or from a header's `r` (`h=writer`). */
export interface Candidate {
  source: string
  writer: string
  t: string
  b?: string
  v: JsonValue | undefined
}

/** Concurrent writes found in one record after a remote update. */
export interface DetectedConflict {
  key: string
  /** Set when only one field is contested and the record was not rewritten concurrently as a whole. */
  field?: string
  versions: ConflictVersion[]
  /** The version the collection shows now. */
  winner: ConflictVersion
}

/** What a record's headers say: the newest header, the last full write and the last delete. */
export interface Floors {
  max: Slot | undefined
  maxSlot: string | undefined
  fullSlot: string | undefined
  deleteSlot: string | undefined
  /** Plain fields older than this are hidden (the last delete; with a record-level policy, the last full write). */
  fieldFloor: string
  /** Set and log entries older than this are hidden. */
  deleteFloor: string
}

/** The value of a record from its index entry. */
export function valueOf(view: RecordView, key: string, rec: IndexEntry): JsonValue | undefined {
  const only = onlyHeader(view, key, rec)
  if (only === undefined) return resolve(view, key, rec as RecordIndex)
  if (only === null || only.d === 1) return undefined
  if (Object.hasOwn(only, '$')) return only.$ as JsonValue
  return plainFields(view, only.r)
}

/** The register fields of a header's `r`, sorted by name (a copy: callers may change it). */
function plainFields(view: RecordView, r: JsonObject | undefined): JsonObject {
  const out: JsonObject = {}
  if (r === undefined) return out
  const names = Object.keys(r)
  let sorted = true
  for (let i = 1; i < names.length; i++) if ((names[i - 1] as string) > (names[i] as string)) sorted = false
  if (!sorted) names.sort()
  for (const f of names) if (fieldTypeOf(view, f) === 'register') out[f] = r[f] as JsonValue
  return out
}

/**
 * The common case of a record held by one header slot and nothing else (one writer's whole
 * write, or its delete): that slot, or null when it is missing from the map. Undefined when
 * the record has more slots than that (then `rec` is a map).
 */
export function onlyHeader(view: RecordView, key: string, rec: IndexEntry): Slot | null | undefined {
  if (typeof rec === 'string') return view.slots.get(key + SEP + HEADER + SEP + rec) ?? null
  if (rec.size !== 1) return undefined
  const slots = rec.get(HEADER)
  if (slots === undefined || slots.size !== 1) return undefined
  for (const slot of slots) return view.slots.get(key + SEP + HEADER + SEP + slot) ?? null
  return undefined
}

/** Whether a record exists, worked out from its slots (not from the collection's `live` set). */
export function recordExists(view: RecordView, key: string, rec: IndexEntry | undefined): boolean {
  if (rec === undefined) return false
  const only = onlyHeader(view, key, rec)
  if (only !== undefined) return only !== null && only.d !== 1
  return resolve(view, key, rec as RecordIndex, true) !== undefined
}

export function floorsOf(view: RecordView, key: string, rec: RecordIndex): Floors {
  const out: Floors = { max: undefined, maxSlot: undefined, fullSlot: undefined, deleteSlot: undefined, fieldFloor: '', deleteFloor: '' }
  let full = ''
  for (const slot of rec.get(HEADER) ?? []) {
    const s = view.slots.get(key + SEP + HEADER + SEP + slot)
    if (s === undefined) continue
    if (out.max === undefined || s.t > out.max.t) {
      out.max = s
      out.maxSlot = slot
    }
    if ((s.f === 1 || s.d === 1) && s.t > full) {
      full = s.t
      out.fullSlot = slot
    }
    if (s.d === 1 && s.t > out.deleteFloor) {
      out.deleteFloor = s.t
      out.deleteSlot = slot
    }
  }
  out.fieldFloor = view.policy !== 'merge' ? full : out.deleteFloor
  return out
}

/** The value of a record from its slots; with `existsOnly`, any non-undefined value when it exists. */
export function resolve(view: RecordView, key: string, rec: RecordIndex, existsOnly = false): JsonValue | undefined {
  const { max, fieldFloor, deleteFloor } = floorsOf(view, key, rec)
  const fields: [string, FieldType, Slot[]][] = []
  let newestField = ''
  for (const [f, slots] of rec) {
    if (f === HEADER) continue
    const type = fieldTypeOf(view, f)
    const floor = type === 'register' ? fieldFloor : deleteFloor
    const live: Slot[] = []
    for (const slot of slots) {
      const s = view.slots.get(flatKey(key, f, slot))
      if (s !== undefined && s.t >= floor) {
        live.push(s)
        if (s.t > newestField) newestField = s.t
      }
    }
    if (live.length > 0) fields.push([f, type, live])
  }
  if (max !== undefined && newestField <= max.t) {
    if (max.d === 1) return undefined
    if (Object.hasOwn(max, '$')) return max.$ as JsonValue
  }
  if (max === undefined && fields.length === 0) return undefined
  if (existsOnly) return true
  const out: JsonObject = {}
  // Plain fields: the latest value among the field slots and the headers' `r`.
  for (const [f, cands] of candidates(view, key, rec, fieldFloor)) {
    const best = bestOf(cands)
    if (best?.v !== undefined) out[f] = best.v
  }
  for (const [f, type, live] of fields) {
    if (type === 'register') {
      continue
    } else if (type === 'log') {
      out[f] = live.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0)).map((s) => s.v ?? null)
    } else {
      const elements: string[] = []
      for (const slot of rec.get(f) ?? []) {
        const s = view.slots.get(flatKey(key, f, slot))
        if (s !== undefined && s.t >= deleteFloor) elements.push(slot.slice(1))
      }
      out[f] = elements.sort()
    }
  }
  return sortKeys(out)
}

/** Every value of each plain field at or above `floor`: field slots and headers' `r`. */
export function candidates(view: RecordView, key: string, rec: RecordIndex, floor: string): Map<string, Candidate[]> {
  const out = new Map<string, Candidate[]>()
  const add = (f: string, c: Candidate): void => {
    const list = out.get(f)
    if (list === undefined) out.set(f, [c])
    else list.push(c)
  }
  for (const slot of rec.get(HEADER) ?? []) {
    const s = view.slots.get(flatKey(key, HEADER, slot))
    if (s?.r === undefined || s.t < floor) continue
    for (const [f, v] of Object.entries(s.r)) if (fieldTypeOf(view, f) === 'register') add(f, { source: 'h' + slot, writer: slot.slice(1), t: s.t, v })
  }
  for (const [f, slots] of rec) {
    if (f === HEADER || fieldTypeOf(view, f) !== 'register') continue
    for (const slot of slots) {
      const s = view.slots.get(flatKey(key, f, slot))
      if (s !== undefined && s.t >= floor) add(f, { source: slot, writer: slot.slice(1), t: s.t, ...(s.b === undefined ? {} : { b: s.b }), v: s.v })
    }
  }
  return out
}

/**
 * The slots (flat keys) of a record that do not decide its value: losing register slots and
 * hidden ones. The headers that set the floors stay.
 */
export function collapsible(view: RecordView, key: string, rec: RecordIndex): string[] {
  const floors = floorsOf(view, key, rec)
  const drop: string[] = []
  // Headers stay if they set a floor or hold a field's winning value.
  const keep = new Set([floors.maxSlot, floors.fullSlot, floors.deleteSlot])
  for (const cands of candidates(view, key, rec, floors.fieldFloor).values()) {
    const best = bestOf(cands)
    if (best?.source.startsWith('h') === true) keep.add(best.source.slice(1))
  }
  for (const slot of rec.get(HEADER) ?? []) if (!keep.has(slot)) drop.push(flatKey(key, HEADER, slot))
  for (const [f, slots] of rec) {
    if (f === HEADER) continue
    const type = fieldTypeOf(view, f)
    const floor = type === 'register' ? floors.fieldFloor : floors.deleteFloor
    const best = type === 'register' ? bestOf(candidates(view, key, rec, floor).get(f) ?? []) : undefined
    for (const slot of slots) {
      const s = view.slots.get(flatKey(key, f, slot))
      if (s === undefined) continue
      if (s.t < floor || (type === 'register' && best?.source !== slot)) drop.push(flatKey(key, f, slot))
    }
  }
  return drop
}

/** A conflict of a record, among the versions that include one of the slots `added` (flat keys) just brought. */
export function detect(
  view: RecordView,
  key: string,
  entry: IndexEntry | undefined,
  addedSlots: Set<string> | string | undefined,
): DetectedConflict | undefined {
  const rec = entry
  if (rec === undefined || typeof rec === 'string' || singleWriter(rec)) return undefined
  const added = typeof addedSlots === 'string' ? new Set([addedSlots]) : (addedSlots ?? new Set<string>())
  const involves = (f: string, slots: Set<string>): boolean => [...slots].some((slot) => added.has(flatKey(key, f, slot)))
  const headers = [...(rec.get(HEADER) ?? [])]
    .map((slot) => ({ slot, s: view.slots.get(flatKey(key, HEADER, slot)) }))
    .filter((h): h is { slot: string; s: Slot } => h.s !== undefined && (h.s.f === 1 || h.s.d === 1))
  const headerSlots = new Set(headers.map((h) => h.slot))
  if (headers.length >= 2 && involves(HEADER, headerSlots)) {
    // Whole versions met: one per writer of a full write or delete.
    const versions = headers.map(({ slot, s }) => versionOf(view, key, rec, slot.slice(1), s))
    const distinct = new Set(versions.map((v) => JSON.stringify(v.value ?? null)))
    if (distinct.size < 2) return undefined
    versions.sort((a, b) => (a.hlc < b.hlc ? 1 : -1))
    return { key, versions, winner: versions[0] as ConflictVersion }
  }
  for (const [f, all] of candidates(view, key, rec, floorsOf(view, key, rec).fieldFloor)) {
    // A value another one was written over (knowingly) is not in conflict with it.
    const cands = all.filter((c) => !all.some((d) => d !== c && d.b !== undefined && d.b >= c.t))
    if (cands.length < 2 || new Set(cands.map((c) => c.writer)).size < 2) continue
    if (!cands.some((c) => added.has(c.source.startsWith('h') ? flatKey(key, HEADER, c.source.slice(1)) : flatKey(key, f, c.source)))) continue
    const versions: ConflictVersion[] = cands.map((c) => ({ device: c.writer, hlc: c.t, ...(c.v === undefined ? {} : { value: c.v }) }))
    if (new Set(versions.map((v) => JSON.stringify(v.value ?? null))).size < 2) continue
    versions.sort((a, b) => (a.hlc < b.hlc ? 1 : -1))
    return { key, field: f, versions, winner: versions[0] as ConflictVersion }
  }
  return undefined
}

/** The record as one writer wrote it in its last full write (or its delete). */
export function versionOf(view: RecordView, key: string, rec: RecordIndex, writer: string, header: Slot): ConflictVersion {
  const v: ConflictVersion = { device: writer, hlc: header.t }
  if (header.d === 1) return v
  if (Object.hasOwn(header, '$')) return { ...v, value: header.$ as JsonValue }
  const out: JsonObject = { ...(header.r ?? {}) }
  for (const [f, slots] of rec) {
    if (f === HEADER || fieldTypeOf(view, f) !== 'register' || !slots.has('=' + writer)) continue
    const s = view.slots.get(flatKey(key, f, '=' + writer))
    if (s?.v !== undefined && s.t >= header.t) out[f] = s.v
  }
  return { ...v, value: sortKeys(out) }
}

/** Whether every header and field slot of a record comes from one writer (then nothing in it conflicts). */
function singleWriter(rec: RecordIndex): boolean {
  let writer: string | undefined
  for (const slots of rec.values()) {
    for (const slot of slots) {
      if (slot.charCodeAt(0) !== 61 /* '=' */) continue
      if (writer === undefined) writer = slot
      else if (slot !== writer) return false
    }
  }
  return true
}

export function bestOf(cands: Candidate[]): Candidate | undefined {
  let best: Candidate | undefined
  for (const c of cands) if (best === undefined || c.t > best.t || (c.t === best.t && c.source > best.source)) best = c
  return best
}

function sortKeys(o: JsonObject): JsonObject {
  const out: JsonObject = {}
  for (const k of Object.keys(o).sort()) out[k] = o[k] as JsonValue
  return out
}
