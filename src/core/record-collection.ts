import * as Y from 'yjs'
import { KitsyncError } from './errors.js'
import { Hlc } from './hlc.js'
import { isJsonObject, utf8Length, type JsonObject, type JsonValue } from './json.js'
import { assertFieldName, assertRecordKey } from './names.js'
import type { ConflictPolicy, ConflictVersion } from './workspace-types.js'

/**
 * A collection of JSON records kept in one Y.Doc.
 *
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
 * A record's value is worked out from its slots (see `resolve`). Fields older than the record's
 * last delete are hidden; with a record-level policy (`latest_wins`, `keep_both`, `ask`) fields
 * older than its last full write are hidden too, so the latest whole version wins.
 * Keys and field names cannot contain control characters, so NUL separates the parts.
 */

export const RECORDS_MAP = 'records'
export const CONFLICTS_MAP = 'conflicts'
const SEP = '\u0000'
const HEADER = ''
/** Transaction meta key of a write that does not change any record's value (collapse). */
const HOUSEKEEPING = Symbol('kitsync:housekeeping')

export type FieldType = 'register' | 'set' | 'growset' | 'log'

interface Slot {
  t: string
  /** Field slot: the stamp of the value it replaced (what its writer saw), if any. */
  b?: string
  v?: JsonValue
  f?: 1
  d?: 1
  $?: JsonValue
  r?: JsonObject
}

/** One value of a plain field: from a field slot (`=writer`) or from a header's `r` (`h=writer`). */
interface Candidate {
  source: string
  writer: string
  t: string
  b?: string
  v: JsonValue | undefined
}

export type RecordChange = {
  key: string
  /** The record after the change, or undefined when it was deleted. */
  value: JsonValue | undefined
  /** The transaction origin: the local write marker, or whatever the applier of a remote update passed. */
  origin: unknown
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

export interface OpenConflict {
  id: string
  key: string
  field?: string
  versions: ConflictVersion[]
  at: number
  detectedBy: string
}

export interface RecordCollectionOptions {
  /** Largest record, as JSON bytes. Writes over it fail with RECORD_TOO_LARGE. */
  maxRecordBytes?: number
  /** Clock of this device (its node tag names the writer slots). A private clock by default. */
  clock?: Hlc
  /** Fields that are not plain registers. */
  fieldTypes?: Record<string, FieldType>
  policy?: ConflictPolicy
}

export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024

type RecordIndex = Map<string, Set<string>>
/**
 * A record's entry in the index: its slots by field, or, for a record held by one header slot
 * and nothing else (one writer's whole writes: most records), just that slot's name. The map
 * and set cost some 350 bytes per record, 40% of a small record's memory, and all of it was
 * copied by the garbage collector when a burst or a catch-up created thousands of records.
 */
type IndexEntry = RecordIndex | string

/** What a record's headers say: the newest header, the last full write and the last delete. */
interface Floors {
  max: Slot | undefined
  maxSlot: string | undefined
  fullSlot: string | undefined
  deleteSlot: string | undefined
  /** Plain fields older than this are hidden (the last delete; with a record-level policy, the last full write). */
  fieldFloor: string
  /** Set and log entries older than this are hidden. */
  deleteFloor: string
}

/**
 * The changes of one transaction, each value read only when asked for (most changes have no
 * one watching them).
 *
 * Built outside the observer on purpose: a closure made inside it shares the observer call's
 * context, which holds the Yjs transaction, so each change kept the whole transaction (state
 * vectors, delete set, events) reachable. With a 'change' listener subscribed, some 2 MB of
 * each ~12 MB a writing process allocated survived every scavenge, and scavenges took 2-7 ms;
 * built here, 0.15-0.25 MB and about 1 ms (node --trace-gc-nvp, 12,000 sequential writes).
 */
function lazyChanges(collection: RecordCollection, keys: string[], origin: unknown): RecordChange[] {
  return keys.map((key) => ({
    key,
    origin,
    get value() {
      return collection.get(key)
    },
  }))
}

export class RecordCollection {
  readonly name: string
  readonly doc: Y.Doc
  readonly maxRecordBytes: number
  readonly clock: Hlc
  private fieldTypesValue: Record<string, FieldType>
  private policyValue: ConflictPolicy
  private readonly map: Y.Map<Slot>
  /** Keys of the records that exist now (not deleted), kept in step by the writes and the observer. */
  private readonly live = new Set<string>()
  readonly conflictMap: Y.Map<OpenConflict>
  /** record key -> its slots present (see IndexEntry), kept in step with the map by the writes and the observer. */
  private readonly index = new Map<string, IndexEntry>()
  private readonly listeners = new Set<(changes: RecordChange[]) => void>()
  private readonly conflictListeners = new Set<(conflicts: DetectedConflict[], origin: unknown) => void>()
  /** This device's writer slot name (`=` + its clock's node tag). */
  private readonly ownSlot: string

  constructor(name: string, doc: Y.Doc = new Y.Doc(), options: RecordCollectionOptions = {}) {
    this.name = name
    this.doc = doc
    this.maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES
    this.clock = options.clock ?? new Hlc(Math.random().toString(36).slice(2, 10).replace(/[^a-z0-9]/g, '') || 'anon')
    this.ownSlot = '=' + this.clock.node
    this.fieldTypesValue = options.fieldTypes ?? {}
    this.policyValue = options.policy ?? 'merge'
    this.map = doc.getMap<Slot>(RECORDS_MAP)
    this.conflictMap = doc.getMap<OpenConflict>(CONFLICTS_MAP)
    // The clock moves past every stamp already in the document (loaded from disk or adopted
    // from a peer), as it does for stamps that arrive later: a new write must be the newest.
    const stamps: string[] = []
    for (const [flat, slot] of this.map.entries()) {
      this.indexKey(flat, true)
      if (typeof slot.t === 'string') stamps.push(slot.t)
    }
    this.clock.observeAll(stamps)
    this.refreshLive()
    this.map.observe((event, tx) => {
      const remote = !tx.local
      // Record key -> the slots the transaction added to it. Only a remote transaction's slots
      // are kept (conflicts are looked for in what arrived); a local one needs its keys alone,
      // and a Set per record of a 1,000-record write was garbage the writer made for nothing.
      // A remote record's one new slot is kept as its flat key, a Set only for a second one.
      const touched = new Map<string, Set<string> | string | undefined>()
      const stamps: string[] = []
      // keysChanged is a plain set; event.changes.keys would work out an action per key, which
      // costs more than applying the update when a whole collection arrives at once.
      // A local transaction holds only writes made through this class (Yjs marks any
      // transaction that applies an update as not local), which kept the index and `live` in
      // step as they went; a merged update is indexed here.
      for (const flat of event.keysChanged) {
        if (flat === null) continue
        if (!remote) {
          const key = recordKeyOf(flat)
          if (key !== undefined) touched.set(key, undefined)
          continue
        }
        const present = this.map.has(flat)
        const key = this.indexKey(flat, present)
        if (key === undefined) continue
        const added = touched.get(key)
        if (!present) {
          if (added === undefined) touched.set(key, undefined)
          continue
        }
        if (added === undefined) touched.set(key, flat)
        else if (typeof added === 'string') touched.set(key, new Set([added, flat]))
        else added.add(flat)
        const t = (this.map.get(flat) as Slot).t
        if (typeof t === 'string') stamps.push(t)
      }
      if (remote) {
        this.clock.observeAll(stamps)
        for (const key of touched.keys()) this.refreshLive(key)
        if (this.conflictListeners.size > 0) {
          const found: DetectedConflict[] = []
          for (const [key, added] of touched) {
            const c = this.detect(key, added)
            if (c !== undefined) found.push(c)
          }
          if (found.length > 0) for (const l of this.conflictListeners) l(found, tx.origin)
        }
      }
      if (this.listeners.size === 0 || tx.meta.has(HOUSEKEEPING)) return
      const changes = lazyChanges(this, [...touched.keys()], tx.origin)
      for (const listener of this.listeners) listener(changes)
    })
  }

  get policy(): ConflictPolicy {
    return this.policyValue
  }

  get fieldTypes(): Record<string, FieldType> {
    return this.fieldTypesValue
  }

  /** Change the rules records are read by (when the collection's settings change). */
  configure(options: { policy?: ConflictPolicy; fieldTypes?: Record<string, FieldType> }): void {
    if (options.policy !== undefined) this.policyValue = options.policy
    if (options.fieldTypes !== undefined) this.fieldTypesValue = options.fieldTypes
    this.refreshLive()
  }

  private refreshLive(key?: string): void {
    if (key !== undefined) {
      if (this.exists(key)) this.live.add(key)
      else this.live.delete(key)
      return
    }
    this.live.clear()
    for (const k of this.index.keys()) if (this.exists(k)) this.live.add(k)
  }

  /** Whether a record exists, worked out from its slots (not from `live`). */
  private exists(key: string): boolean {
    const rec = this.index.get(key)
    if (rec === undefined) return false
    const only = this.onlyHeader(key, rec)
    if (only !== undefined) return only !== null && only.d !== 1
    return this.resolve(key, rec as RecordIndex, true) !== undefined
  }

  /**
   * The common case of a record held by one header slot and nothing else (one writer's whole
   * write, or its delete): that slot, or null when it is missing from the map. Undefined when
   * the record has more slots than that (then `rec` is a map).
   */
  private onlyHeader(key: string, rec: IndexEntry): Slot | null | undefined {
    if (typeof rec === 'string') return this.map.get(key + SEP + HEADER + SEP + rec) ?? null
    if (rec.size !== 1) return undefined
    const slots = rec.get(HEADER)
    if (slots === undefined || slots.size !== 1) return undefined
    for (const slot of slots) return this.map.get(key + SEP + HEADER + SEP + slot) ?? null
    return undefined
  }

  /** Subscribe to record changes, one call per transaction. Returns the unsubscribe function. */
  onChange(listener: (changes: RecordChange[]) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Subscribe to conflicts found when remote updates are merged. */
  onConflict(listener: (conflicts: DetectedConflict[], origin: unknown) => void): () => void {
    this.conflictListeners.add(listener)
    return () => this.conflictListeners.delete(listener)
  }

  has(key: string): boolean {
    // Inside a transaction of this collection the observer has not run yet: work it out.
    if (this.doc._transaction !== null) return this.exists(key)
    return this.live.has(key)
  }

  get(key: string): JsonValue | undefined {
    const rec = this.index.get(key)
    return rec === undefined ? undefined : this.valueOf(key, rec)
  }

  /** The value of a record from its index entry. */
  private valueOf(key: string, rec: IndexEntry): JsonValue | undefined {
    const only = this.onlyHeader(key, rec)
    if (only === undefined) return this.resolve(key, rec as RecordIndex)
    if (only === null || only.d === 1) return undefined
    if (Object.hasOwn(only, '$')) return only.$ as JsonValue
    return this.plainFields(only.r)
  }

  /** The register fields of a header's `r`, sorted by name (a copy: callers may change it). */
  private plainFields(r: JsonObject | undefined): JsonObject {
    const out: JsonObject = {}
    if (r === undefined) return out
    const names = Object.keys(r)
    let sorted = true
    for (let i = 1; i < names.length; i++) if ((names[i - 1] as string) > (names[i] as string)) sorted = false
    if (!sorted) names.sort()
    for (const f of names) if (this.typeOf(f) === 'register') out[f] = r[f] as JsonValue
    return out
  }

  /** Keys of the records that exist (deleted ones left out), sorted. */
  keys(): string[] {
    return [...this.live].sort()
  }

  get size(): number {
    return this.live.size
  }

  entries(): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {}
    for (const key of this.keys()) {
      const v = this.get(key)
      if (v === undefined) continue
      // `out.__proto__ = v` would set the prototype, not add the record `__proto__`.
      if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
      else out[key] = v
    }
    return out
  }

  /** Replace a record with `value` (or, with `field`, set one top-level field of it). */
  set(key: string, value: JsonValue, origin: unknown, field?: string): void {
    assertRecordKey(key)
    if (field !== undefined) assertFieldName(field)
    const rec = this.index.get(key)
    const current = rec === undefined ? undefined : this.valueOf(key, rec)
    const next = field === undefined ? value : { ...(isJsonObject(current) ? current : {}), [field]: value }
    this.checkSize(key, next)
    // Rewriting what is already there would only leave deleted items behind. (With a
    // record-level policy a rewrite still counts: it makes this version the latest.)
    if (this.policy === 'merge' && current !== undefined && jsonEqual(current, next)) return
    // Check every field before writing any: a transaction cannot be rolled back.
    let typed = false
    if (field !== undefined) this.checkField(field, value, current)
    else if (isJsonObject(value)) {
      for (const f in value) {
        this.checkField(f, value[f] as JsonValue, current)
        if (this.typeOf(f) !== 'register') typed = true
      }
    }
    const t = this.clock.now()
    this.write(key, origin, () => {
      // The fields a whole write clears: none for a record held by its header alone.
      const others = rec === undefined || typeof rec === 'string' || (rec.size === 1 && rec.has(HEADER)) ? undefined : [...rec.keys()]
      const recordLevel = this.policyValue !== 'merge'
      if (field !== undefined) {
        if (recordLevel && (current === undefined || !isJsonObject(current))) this.writeHeader(key, { t })
        this.writeField(key, field, value, t, current)
        return
      }
      if (!isJsonObject(value)) {
        this.writeHeader(key, { t, f: 1, $: value }, rec)
        if (others !== undefined) for (const f of others) if (f !== HEADER && this.typeOf(f) === 'register') this.clearField(key, f)
        return
      }
      // One header holds the plain fields of a whole-record write: one item per record.
      let r: JsonObject
      if (!typed) r = { ...value }
      else {
        r = {}
        for (const f in value) if (this.typeOf(f) === 'register') r[f] = value[f] as JsonValue
      }
      this.writeHeader(key, { t, f: 1, r }, rec)
      if (others !== undefined) for (const f of others) if (f !== HEADER && this.typeOf(f) === 'register') this.clearField(key, f)
      if (typed) for (const f in value) if (this.typeOf(f) !== 'register') this.writeField(key, f, value[f] as JsonValue, t, current)
    }, field === undefined ? true : undefined)
  }

  /** Delete a record. Returns false when there was none. */
  delete(key: string, origin: unknown): boolean {
    assertRecordKey(key)
    if (!this.has(key)) return false
    const t = this.clock.now()
    this.write(key, origin, () => {
      for (const [f, slots] of [...this.fieldsOf(key)]) {
        if (f === HEADER) continue
        for (const slot of [...slots]) this.remove(flatKey(key, f, slot))
      }
      this.writeHeader(key, { t, d: 1 })
    })
    return true
  }

  /** Add elements to a set field (creating the record if needed). */
  addToSet(key: string, field: string, elements: string[], origin: unknown): void {
    assertRecordKey(key)
    this.assertSetField(field)
    for (const e of elements) assertElement(e)
    const t = this.clock.now()
    this.write(key, origin, () => {
      if (!this.has(key)) this.writeHeader(key, { t })
      for (const e of elements) if (!this.hasElement(key, flatKey(key, field, '+' + e))) this.put(key, field, '+' + e, { t })
    })
  }

  /** Remove elements from a set field. */
  removeFromSet(key: string, field: string, elements: string[], origin: unknown): void {
    assertRecordKey(key)
    this.assertSetField(field)
    if (this.typeOf(field) === 'growset') throw new KitsyncError('APPEND_ONLY', `${field} in ${this.name} is append-only: elements cannot be removed`)
    this.write(key, origin, () => {
      for (const e of elements) this.remove(flatKey(key, field, '+' + e))
    })
  }

  /** Append an entry to a log field (creating the record if needed). Returns the entry's stamp. */
  appendToLog(key: string, field: string, value: JsonValue, origin: unknown): string {
    assertRecordKey(key)
    if (this.typeOf(field) !== 'log') throw new KitsyncError('INVALID_ARGUMENT', `${field} is not an append-only list in ${this.name}`)
    const t = this.clock.now()
    this.write(key, origin, () => {
      if (!this.has(key)) this.writeHeader(key, { t })
      this.put(key, field, '#' + t, { t, v: value })
    })
    return t
  }

  /** Every stamp of a record (its newest write), for callers that need "when". */
  lastWrite(key: string): string | undefined {
    let max: string | undefined
    for (const [f, slots] of this.fieldsOf(key)) {
      for (const slot of slots) {
        const s = this.map.get(flatKey(key, f, slot))
        if (s !== undefined && (max === undefined || s.t > max)) max = s.t
      }
    }
    return max
  }

  /**
   * Keep only the slots that decide the record's value: losing register slots and hidden ones
   * go, the headers that set the floors stay. Never changes what `get` returns.
   */
  collapse(key: string, origin: unknown): void {
    const rec = this.index.get(key)
    // One header slot: nothing to collapse.
    if (rec === undefined || typeof rec === 'string') return
    const floors = this.floors(key, rec)
    const drop: string[] = []
    // Headers stay if they set a floor or hold a field's winning value.
    const keep = new Set([floors.maxSlot, floors.fullSlot, floors.deleteSlot])
    for (const cands of this.candidates(key, rec, floors.fieldFloor).values()) {
      const best = bestOf(cands)
      if (best?.source.startsWith('h') === true) keep.add(best.source.slice(1))
    }
    for (const slot of rec.get(HEADER) ?? []) if (!keep.has(slot)) drop.push(flatKey(key, HEADER, slot))
    for (const [f, slots] of rec) {
      if (f === HEADER) continue
      const type = this.typeOf(f)
      const floor = type === 'register' ? floors.fieldFloor : floors.deleteFloor
      const best = type === 'register' ? bestOf(this.candidates(key, rec, floor).get(f) ?? []) : undefined
      for (const slot of slots) {
        const s = this.map.get(flatKey(key, f, slot))
        if (s === undefined) continue
        if (s.t < floor || (type === 'register' && best?.source !== slot)) drop.push(flatKey(key, f, slot))
      }
    }
    if (drop.length === 0) return
    // Its own transaction is marked: the value stays what it was, so listeners are not told of
    // a change (they were, with its true origin, when the slots arrived). Inside a larger
    // transaction the writes are that transaction's.
    const own = this.doc._transaction === null
    this.write(key, origin, () => {
      if (own) this.doc._transaction?.meta.set(HOUSEKEEPING, true)
      for (const flat of drop) this.remove(flat)
    })
  }

  /** Subscribe to conflicts that another device recorded (`ask`), as they arrive. */
  onConflictRecorded(listener: (conflict: OpenConflict) => void): () => void {
    const observer = (event: Y.YMapEvent<OpenConflict>, tx: Y.Transaction): void => {
      if (tx.local) return
      let settled = false
      for (const id of event.keysChanged) {
        const c = this.conflictMap.get(id)
        if (c === undefined) continue
        if (this.isSettled(c)) settled = true
        else listener(c)
      }
      // An entry that arrived after its conflict was resolved elsewhere: clean it up (after this transaction).
      if (settled) queueMicrotask(() => this.dropSettledConflicts('kitsync:settle'))
    }
    this.conflictMap.observe(observer)
    return () => this.conflictMap.unobserve(observer)
  }

  /** Conflicts recorded for `ask` and not resolved yet. */
  openConflicts(): OpenConflict[] {
    return [...this.conflictMap.values()].filter((c) => !this.isSettled(c)).sort((a, b) => a.at - b.at || a.id.localeCompare(b.id))
  }

  /**
   * A recorded conflict is settled once its versions no longer stand side by side in the
   * record (a later write replaced them). Two devices may record the same conflict at once
   * and one entry can outlive the resolve; such entries are settled, not open.
   */
  isSettled(c: OpenConflict): boolean {
    const stamps = new Set<string>()
    for (const [f, slots] of this.fieldsOf(c.key)) {
      if (c.field !== undefined && f !== c.field && f !== HEADER) continue
      if (c.field === undefined && f !== HEADER) continue
      for (const slot of slots) {
        const s = this.map.get(flatKey(c.key, f, slot))
        if (s !== undefined) stamps.add(s.t)
      }
    }
    return c.versions.filter((v) => stamps.has(v.hlc)).length < 2
  }

  /** Forget recorded conflicts that are settled (see isSettled). */
  dropSettledConflicts(origin: unknown): void {
    const settled = [...this.conflictMap.values()].filter((c) => this.isSettled(c))
    if (settled.length > 0) this.doc.transact(() => settled.forEach((c) => this.conflictMap.delete(c.id)), origin)
  }

  recordConflict(conflict: OpenConflict, origin: unknown): void {
    if (this.conflictMap.has(conflict.id)) return
    this.doc.transact(() => this.conflictMap.set(conflict.id, conflict), origin)
  }

  clearConflict(id: string, origin: unknown): void {
    if (this.conflictMap.has(id)) this.doc.transact(() => this.conflictMap.delete(id), origin)
  }

  // ---- reading ------------------------------------------------------------------------------

  private floors(key: string, rec: RecordIndex): Floors {
    const out: Floors = { max: undefined, maxSlot: undefined, fullSlot: undefined, deleteSlot: undefined, fieldFloor: '', deleteFloor: '' }
    let full = ''
    for (const slot of rec.get(HEADER) ?? []) {
      const s = this.map.get(key + SEP + HEADER + SEP + slot)
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
    out.fieldFloor = this.policy !== 'merge' ? full : out.deleteFloor
    return out
  }

  /** The value of a record from its slots; with `existsOnly`, any non-undefined value when it exists. */
  private resolve(key: string, rec: RecordIndex, existsOnly = false): JsonValue | undefined {
    const { max, fieldFloor, deleteFloor } = this.floors(key, rec)
    const fields: [string, FieldType, Slot[]][] = []
    let newestField = ''
    for (const [f, slots] of rec) {
      if (f === HEADER) continue
      const type = this.typeOf(f)
      const floor = type === 'register' ? fieldFloor : deleteFloor
      const live: Slot[] = []
      for (const slot of slots) {
        const s = this.map.get(flatKey(key, f, slot))
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
    for (const [f, cands] of this.candidates(key, rec, fieldFloor)) {
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
          const s = this.map.get(flatKey(key, f, slot))
          if (s !== undefined && s.t >= deleteFloor) elements.push(slot.slice(1))
        }
        out[f] = elements.sort()
      }
    }
    return sortKeys(out)
  }

  /** Every value of each plain field at or above `floor`: field slots and headers' `r`. */
  private candidates(key: string, rec: RecordIndex, floor: string): Map<string, Candidate[]> {
    const out = new Map<string, Candidate[]>()
    const add = (f: string, c: Candidate): void => {
      const list = out.get(f)
      if (list === undefined) out.set(f, [c])
      else list.push(c)
    }
    for (const slot of rec.get(HEADER) ?? []) {
      const s = this.map.get(flatKey(key, HEADER, slot))
      if (s?.r === undefined || s.t < floor) continue
      for (const [f, v] of Object.entries(s.r)) if (this.typeOf(f) === 'register') add(f, { source: 'h' + slot, writer: slot.slice(1), t: s.t, v })
    }
    for (const [f, slots] of rec) {
      if (f === HEADER || this.typeOf(f) !== 'register') continue
      for (const slot of slots) {
        const s = this.map.get(flatKey(key, f, slot))
        if (s !== undefined && s.t >= floor) add(f, { source: slot, writer: slot.slice(1), t: s.t, ...(s.b === undefined ? {} : { b: s.b }), v: s.v })
      }
    }
    return out
  }

  /** A conflict of a record, among the versions that include one of the slots `added` (flat keys) just brought. */
  private detect(key: string, addedSlots: Set<string> | string | undefined): DetectedConflict | undefined {
    const rec = this.index.get(key)
    if (rec === undefined || typeof rec === 'string' || singleWriter(rec)) return undefined
    const added = typeof addedSlots === 'string' ? new Set([addedSlots]) : (addedSlots ?? new Set<string>())
    const involves = (f: string, slots: Set<string>): boolean => [...slots].some((slot) => added.has(flatKey(key, f, slot)))
    const headers = [...(rec.get(HEADER) ?? [])].map((slot) => ({ slot, s: this.map.get(flatKey(key, HEADER, slot)) })).filter((h): h is { slot: string; s: Slot } => h.s !== undefined && (h.s.f === 1 || h.s.d === 1))
    const headerSlots = new Set(headers.map((h) => h.slot))
    if (headers.length >= 2 && involves(HEADER, headerSlots)) {
      // Whole versions met: one per writer of a full write or delete.
      const versions = headers.map(({ slot, s }) => this.versionOf(key, rec, slot.slice(1), s))
      const distinct = new Set(versions.map((v) => JSON.stringify(v.value ?? null)))
      if (distinct.size < 2) return undefined
      versions.sort((a, b) => (a.hlc < b.hlc ? 1 : -1))
      return { key, versions, winner: versions[0] as ConflictVersion }
    }
    for (const [f, all] of this.candidates(key, rec, this.floors(key, rec).fieldFloor)) {
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
  private versionOf(key: string, rec: RecordIndex, writer: string, header: Slot): ConflictVersion {
    const v: ConflictVersion = { device: writer, hlc: header.t }
    if (header.d === 1) return v
    if (Object.hasOwn(header, '$')) return { ...v, value: header.$ as JsonValue }
    const out: JsonObject = { ...(header.r ?? {}) }
    for (const [f, slots] of rec) {
      if (f === HEADER || this.typeOf(f) !== 'register' || !slots.has('=' + writer)) continue
      const s = this.map.get(flatKey(key, f, '=' + writer))
      if (s?.v !== undefined && s.t >= header.t) out[f] = s.v
    }
    return { ...v, value: sortKeys(out) }
  }

  // ---- writing ------------------------------------------------------------------------------

  /** Write this device's header slot of a record; `rec` is its index entry, if the caller has it at hand. */
  private writeHeader(key: string, slot: Slot, rec: IndexEntry | undefined = this.index.get(key)): void {
    const own = this.ownSlot
    if (rec === undefined || rec === own) {
      // A new record, or one that only this device's header holds: nothing to clear, and the
      // index entry is the header slot.
      this.map.set(flatKey(key, HEADER, own), slot)
      this.index.set(key, own)
      return
    }
    if (typeof rec === 'string') this.remove(flatKey(key, HEADER, rec))
    else {
      // The floors go with the headers this write replaces: what they hide goes first, or it would show again.
      this.removeHidden(key, rec)
      const headers = rec.get(HEADER)
      if (headers !== undefined && (headers.size > 1 || !headers.has(own))) for (const s of [...headers]) if (s !== own) this.remove(flatKey(key, HEADER, s))
    }
    this.put(key, HEADER, own, slot)
  }

  /** Remove the field, element and entry slots that the record's floors hide (older than its last delete or, with a record-level policy, its last full write). */
  private removeHidden(key: string, rec: RecordIndex): void {
    const { fieldFloor, deleteFloor } = this.floors(key, rec)
    if (fieldFloor === '' && deleteFloor === '') return
    for (const [f, slots] of [...rec]) {
      if (f === HEADER) continue
      const floor = this.typeOf(f) === 'register' ? fieldFloor : deleteFloor
      for (const slot of [...slots]) {
        const s = this.map.get(flatKey(key, f, slot))
        if (s !== undefined && s.t < floor) this.remove(flatKey(key, f, slot))
      }
    }
  }

  private writeField(key: string, field: string, value: JsonValue, t: string, current: JsonValue | undefined): void {
    const type = this.typeOf(field)
    if (type === 'register') {
      const own = this.ownSlot
      const rec = this.slotsOf(key)
      const slots = rec?.get(field)
      if (this.policy === 'merge' && slots?.size === 1 && slots.has(own) && jsonEqual(this.map.get(flatKey(key, field, own))?.v, value)) return
      const seen = rec === undefined ? undefined : bestOf(this.candidates(key, rec, '').get(field) ?? [])
      for (const s of [...(slots ?? [])]) if (s !== own) this.remove(flatKey(key, field, s))
      this.put(key, field, own, seen === undefined ? { t, v: value } : { t, b: seen.t, v: value })
      return
    }
    const before = isJsonObject(current) && Array.isArray(current[field]) ? (current[field] as JsonValue[]) : []
    if (!Array.isArray(value)) return
    if (type === 'log') {
      value.slice(before.length).forEach((v, i) => {
        const stamp = i === 0 ? t : this.clock.now()
        this.put(key, field, '#' + stamp, { t: stamp, v })
      })
      return
    }
    const next = new Set(value as string[])
    const removed = before.filter((e) => typeof e === 'string' && !next.has(e)) as string[]
    for (const e of removed) this.remove(flatKey(key, field, '+' + e))
    for (const e of next) if (!this.hasElement(key, flatKey(key, field, '+' + e))) this.put(key, field, '+' + e, { t })
  }

  /** Whether a set element's slot is there and not hidden by the record's last delete (else an add writes it anew). */
  private hasElement(key: string, flat: string): boolean {
    const s = this.map.get(flat)
    if (s === undefined) return false
    const rec = this.index.get(key)
    return rec === undefined || typeof rec === 'string' || s.t >= this.floors(key, rec).deleteFloor
  }

  /** Throws what writing `value` to `field` would violate (set and log fields only). */
  private checkField(field: string, value: JsonValue, current: JsonValue | undefined): void {
    assertFieldName(field)
    const type = this.typeOf(field)
    if (type === 'register') return
    if (!Array.isArray(value)) throw new KitsyncError('INVALID_ARGUMENT', `${field} in ${this.name} is a ${type === 'log' ? 'list' : 'set'}: give an array`)
    const before = isJsonObject(current) && Array.isArray(current[field]) ? (current[field] as JsonValue[]) : []
    if (type === 'log') {
      if (value.length < before.length || !before.every((v, i) => jsonEqual(v, value[i]))) {
        throw new KitsyncError('APPEND_ONLY', `${field} in ${this.name} is append-only: entries can be added at the end, not changed or removed`)
      }
      return
    }
    for (const e of value) {
      if (typeof e !== 'string') throw new KitsyncError('INVALID_ARGUMENT', `${field} in ${this.name} is a set of strings`)
      assertElement(e)
    }
    const next = new Set(value as string[])
    const removed = before.filter((e) => typeof e === 'string' && !next.has(e))
    if (removed.length > 0 && type === 'growset') throw new KitsyncError('APPEND_ONLY', `${field} in ${this.name} is append-only: ${JSON.stringify(removed[0])} cannot be removed`)
  }

  private clearField(key: string, field: string): void {
    for (const [f, slots] of [...this.fieldsOf(key)]) if (f === field) for (const s of [...slots]) this.remove(flatKey(key, field, s))
  }

  private typeOf(field: string): FieldType {
    // Own properties only: a field named like an Object.prototype member ("constructor") is a register.
    return Object.hasOwn(this.fieldTypesValue, field) ? (this.fieldTypesValue[field] as FieldType) : 'register'
  }

  private assertSetField(field: string): void {
    const type = this.typeOf(field)
    if (type !== 'set' && type !== 'growset') throw new KitsyncError('INVALID_ARGUMENT', `${field} is not a set in ${this.name}`)
  }

  private checkSize(key: string, next: JsonValue): void {
    // Most records are far below the limit: a bound on their JSON length settles it without
    // writing them out (a UTF-8 character takes at most 3 bytes per UTF-16 unit).
    if ((jsonLengthBound(next) + 6 * key.length + 4) * 3 <= this.maxRecordBytes) return
    const size = utf8Length(JSON.stringify({ [key]: next }))
    if (size > this.maxRecordBytes) {
      throw new KitsyncError('RECORD_TOO_LARGE', `record ${JSON.stringify(key)} in ${this.name} is ${size} bytes, over the limit of ${this.maxRecordBytes}`, {
        details: { collection: this.name, size, limit: this.maxRecordBytes },
      })
    }
  }

  /** Run the writes of `fn` for one record in a transaction, then bring `live` up to date for it. */
  private write(key: string, origin: unknown, fn: () => void, exists?: true): void {
    // Inside a transaction already (a group of queued writes): its origin stands, and a nested
    // doc.transact would only add its bookkeeping per record.
    if (this.doc._transaction !== null) fn()
    else this.doc.transact(fn, origin)
    // A whole write leaves the record there, whatever it held (its header is the newest): no
    // need to work it out from the slots again.
    if (exists === true) this.live.add(key)
    else this.refreshLive(key)
  }

  /**
   * Write one slot. The index follows at once, not only in the observer, so reads inside a
   * larger transaction (a batch of writes) see the writes made before them.
   */
  private put(key: string, field: string, slot: string, value: Slot): void {
    this.map.set(flatKey(key, field, slot), value)
    this.indexAdd(key, field, slot)
  }

  private remove(flat: string): void {
    this.map.delete(flat)
    this.indexKey(flat, false)
  }

  /** A record's slots as a map; a record in the compact form gets one (kept: it is about to get more slots). */
  private slotsOf(key: string): RecordIndex | undefined {
    const entry = this.index.get(key)
    if (typeof entry !== 'string') return entry
    const rec: RecordIndex = new Map([[HEADER, new Set([entry])]])
    this.index.set(key, rec)
    return rec
  }

  /** A record's slots by field, to read: the compact form is not turned into a map. */
  private fieldsOf(key: string): Iterable<[string, Iterable<string>]> {
    const entry = this.index.get(key)
    if (entry === undefined) return []
    return typeof entry === 'string' ? [[HEADER, [entry]]] : entry
  }

  private indexAdd(key: string, field: string, slot: string): void {
    const entry = this.index.get(key)
    if (field === HEADER && (entry === undefined || entry === slot)) {
      this.index.set(key, slot)
      return
    }
    let rec = this.slotsOf(key)
    if (rec === undefined) this.index.set(key, (rec = new Map()))
    let slots = rec.get(field)
    if (slots === undefined) rec.set(field, (slots = new Set()))
    slots.add(slot)
  }

  /** Keep the index in step with one flat map key; returns the record key. */
  private indexKey(flat: string, present: boolean): string | undefined {
    const i = flat.indexOf(SEP)
    const j = flat.indexOf(SEP, i + 1)
    if (i < 0 || j < 0) return undefined
    const key = flat.slice(0, i)
    const field = flat.slice(i + 1, j)
    const slot = flat.slice(j + 1)
    if (present) {
      this.indexAdd(key, field, slot)
      return key
    }
    const rec = this.index.get(key)
    if (typeof rec === 'string') {
      if (field === HEADER && slot === rec) this.index.delete(key)
    } else if (rec !== undefined) {
      const slots = rec.get(field)
      slots?.delete(slot)
      if (slots !== undefined && slots.size === 0) rec.delete(field)
      if (rec.size === 0) this.index.delete(key)
    }
    return key
  }
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

/** The record key of a flat map key (undefined if it is not one). */
function recordKeyOf(flat: string): string | undefined {
  const i = flat.indexOf(SEP)
  return i < 0 || flat.indexOf(SEP, i + 1) < 0 ? undefined : flat.slice(0, i)
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

function bestOf(cands: Candidate[]): Candidate | undefined {
  let best: Candidate | undefined
  for (const c of cands) if (best === undefined || c.t > best.t || (c.t === best.t && c.source > best.source)) best = c
  return best
}

function sortKeys(o: JsonObject): JsonObject {
  const out: JsonObject = {}
  for (const k of Object.keys(o).sort()) out[k] = o[k] as JsonValue
  return out
}

function flatKey(key: string, field: string, slot: string): string {
  return key + SEP + field + SEP + slot
}

function assertElement(e: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof e !== 'string' || e.length === 0 || e.length > 256 || /[\u0000-\u001f\u007f]/.test(e)) {
    throw new KitsyncError('INVALID_ARGUMENT', `invalid set element ${JSON.stringify(e)}: use 1-256 characters without control characters`)
  }
}

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  return JSON.stringify(a) === JSON.stringify(b)
}
