import * as Y from 'yjs'
import { ConflictMap, conflictSettled, type OpenConflict } from './conflict-map.js'
import { KitsyncError } from './errors.js'
import { privateClock, type Hlc } from './hlc.js'
import { isJsonObject, jsonEqual, type JsonObject, type JsonValue } from './json.js'
import { assertFieldName, assertRecordKey } from './names.js'
import { lazyChanges, recordsObject, type RecordChange } from './record-changes.js'
import { assertElement, checkField, checkRecordSize } from './record-checks.js'
import { CollectionIndex, type IndexEntry, type RecordIndex } from './record-index.js'
import { bestOf, candidates, collapsible, detect, floorsOf, recordExists, valueOf, type DetectedConflict } from './record-resolve.js'
import { LayoutSlots, type RecordLayout } from './record-layout.js'
import { fieldTypeOf, flatKey, HEADER, recordKeyOf, type FieldType, type RecordView, type Slot } from './record-slots.js'
import type { ConflictPolicy } from './workspace-types.js'
import { inTransaction, transactionMeta } from './yjs-internals.js'

/**
 * A collection of JSON records kept in one Y.Doc: the writes, the index and the change and
 * conflict events. Each field of each record is a slot, kept by flat key in a Y.Map (layout 1)
 * or a Y.Array of entries (layout 2, record-kv.ts); the slots are in record-slots.ts. A record's value is worked out from its slots by the read rule
 * (record-resolve.ts), found through the index of each record's slots (record-index.ts).
 * Conflicts recorded for `ask` live beside the records (conflict-map.ts).
 */

/** Transaction meta key of a write that does not change any record's value (collapse). */
const HOUSEKEEPING = Symbol('kitsync:housekeeping')

export type { RecordChange } from './record-changes.js'

export interface RecordCollectionOptions {
  /** Largest record, as JSON bytes. Writes over it fail with RECORD_TOO_LARGE. */
  maxRecordBytes?: number
  /** Clock of this device (its node tag names the writer slots). A private clock by default. */
  clock?: Hlc
  /** Fields that are not plain registers. */
  fieldTypes?: Record<string, FieldType>
  policy?: ConflictPolicy
  /** Where the slots live, as the store recorded it (record-layout.ts). Default: what the document holds, else the first content decides. */
  layout?: RecordLayout
}

export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024

export class RecordCollection {
  readonly name: string
  readonly doc: Y.Doc
  readonly maxRecordBytes: number
  readonly clock: Hlc
  /** The slots and the settings (policy, field types) records are read by. */
  private view: RecordView
  private readonly map: LayoutSlots<Slot>
  /** Keys of the records that exist now (not deleted), kept in step by the writes and the observer. */
  private readonly live = new Set<string>()
  private readonly conflicts: ConflictMap
  readonly conflictMap: Y.Map<OpenConflict>
  /** record key -> its slots present, kept in step with the map by the writes and the observer. */
  private readonly index = new CollectionIndex()
  private readonly listeners = new Set<(changes: RecordChange[]) => void>()
  private readonly conflictListeners = new Set<(conflicts: DetectedConflict[], origin: unknown) => void>()
  /** This device's writer slot name (`=` + its clock's node tag). */
  private readonly ownSlot: string

  constructor(name: string, doc: Y.Doc = new Y.Doc(), options: RecordCollectionOptions = {}) {
    this.name = name
    this.doc = doc
    this.maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES
    this.clock = options.clock ?? privateClock()
    this.ownSlot = '=' + this.clock.node
    this.map = new LayoutSlots<Slot>(doc, options.layout)
    this.view = { slots: this.map, policy: options.policy ?? 'merge', fieldTypes: options.fieldTypes ?? {} }
    this.conflicts = new ConflictMap(doc, (c) => this.isSettled(c))
    this.conflictMap = this.conflicts.map
    // The clock moves past every stamp already in the document (loaded from disk or adopted
    // from a peer), as it does for stamps that arrive later: a new write must be the newest.
    const stamps: string[] = []
    for (const [flat, slot] of this.map.entries()) {
      this.index.update(flat, true)
      if (typeof slot.t === 'string') stamps.push(slot.t)
    }
    this.clock.observeAll(stamps)
    this.refreshLive()
    this.map.observe((keysChanged, tx) => {
      const remote = !tx.local
      // Record key -> the slots the transaction added to it. Only a remote transaction's slots
      // are kept (conflicts are looked for in what arrived); a local one needs its keys alone,
      // and a Set per record of a 1,000-record write was garbage the writer made for nothing.
      // A remote record's one new slot is kept as its flat key, a Set only for a second one.
      const touched = new Map<string, Set<string> | string | undefined>()
      const stamps: string[] = []
      // A local transaction holds only writes made through this class (Yjs marks any
      // transaction that applies an update as not local), which kept the index and `live` in
      // step as they went; a merged update is indexed here.
      for (const flat of keysChanged) {
        if (flat === null) continue
        if (!remote) {
          const key = recordKeyOf(flat)
          if (key !== undefined) touched.set(key, undefined)
          continue
        }
        const present = this.map.has(flat)
        const key = this.index.update(flat, present)
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
            const c = detect(this.view, key, this.index.get(key), added)
            if (c !== undefined) found.push(c)
          }
          if (found.length > 0) for (const l of this.conflictListeners) l(found, tx.origin)
        }
      }
      if (this.listeners.size === 0 || tx.meta.has(HOUSEKEEPING)) return
      const changes = lazyChanges(this, [...touched.keys()], tx.origin, { flats: keysChanged, view: this.view, entry: (k) => this.index.get(k) })
      for (const listener of this.listeners) listener(changes)
    })
  }

  /** Where the slots live (record-layout.ts); undefined until the collection holds something. */
  get layout(): RecordLayout | undefined {
    return this.map.layout
  }

  /** Whether the document holds slots of both layouts (see LayoutSlots); `fn` is told when that happens later. */
  mixedLayout(fn?: () => void): boolean {
    if (fn !== undefined) this.map.onMixed = fn
    return this.map.mixed
  }

  get policy(): ConflictPolicy {
    return this.view.policy
  }

  get fieldTypes(): Record<string, FieldType> {
    return this.view.fieldTypes
  }

  /** Change the rules records are read by (when the collection's settings change). */
  configure(options: { policy?: ConflictPolicy; fieldTypes?: Record<string, FieldType> }): void {
    const { policy, fieldTypes } = this.view
    this.view = {
      slots: this.map,
      policy: options.policy !== undefined ? options.policy : policy,
      fieldTypes: options.fieldTypes !== undefined ? options.fieldTypes : fieldTypes,
    }
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
    return recordExists(this.view, key, this.index.get(key))
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
    if (inTransaction(this.doc)) return this.exists(key)
    return this.live.has(key)
  }

  get(key: string): JsonValue | undefined {
    const rec = this.index.get(key)
    return rec === undefined ? undefined : valueOf(this.view, key, rec)
  }

  /** Keys of the records that exist (deleted ones left out), sorted. */
  keys(): string[] {
    return [...this.live].sort()
  }

  get size(): number {
    return this.live.size
  }

  entries(): Record<string, JsonValue> {
    return recordsObject(this, this.keys())
  }

  /** Replace a record with `value` (or, with `field`, set one top-level field of it). */
  set(key: string, value: JsonValue, origin: unknown, field?: string): void {
    assertRecordKey(key)
    if (field !== undefined) assertFieldName(field)
    const rec = this.index.get(key)
    const current = rec === undefined ? undefined : valueOf(this.view, key, rec)
    const next = field === undefined ? value : { ...(isJsonObject(current) ? current : {}), [field]: value }
    checkRecordSize(this.name, key, next, this.maxRecordBytes)
    // Rewriting what is already there would only leave deleted items behind. (With a
    // record-level policy a rewrite still counts: it makes this version the latest.)
    if (this.policy === 'merge' && current !== undefined && jsonEqual(current, next)) return
    // Check every field before writing any: a transaction cannot be rolled back.
    let typed = false
    if (field !== undefined) checkField(this.view, this.name, field, value, current)
    else if (isJsonObject(value)) {
      for (const f in value) {
        checkField(this.view, this.name, f, value[f] as JsonValue, current)
        if (this.typeOf(f) !== 'register') typed = true
      }
    }
    const t = this.clock.now()
    this.write(
      key,
      origin,
      () => {
        // The fields a whole write clears: none for a record held by its header alone.
        const others = rec === undefined || typeof rec === 'string' || (rec.size === 1 && rec.has(HEADER)) ? undefined : [...rec.keys()]
        const recordLevel = this.view.policy !== 'merge'
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
      },
      field === undefined ? true : undefined,
    )
  }

  /** Delete a record. Returns false when there was none. */
  delete(key: string, origin: unknown): boolean {
    assertRecordKey(key)
    if (!this.has(key)) return false
    const t = this.clock.now()
    this.write(key, origin, () => {
      for (const [f, slots] of [...this.index.fieldsOf(key)]) {
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
    for (const [f, slots] of this.index.fieldsOf(key)) {
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
    const drop = collapsible(this.view, key, rec)
    if (drop.length === 0) return
    // Its own transaction is marked: the value stays what it was, so listeners are not told of
    // a change (they were, with its true origin, when the slots arrived). Inside a larger
    // transaction the writes are that transaction's.
    const own = !inTransaction(this.doc)
    this.write(key, origin, () => {
      if (own) transactionMeta(this.doc)?.set(HOUSEKEEPING, true)
      for (const flat of drop) this.remove(flat)
    })
  }

  /** Subscribe to conflicts that another device recorded (`ask`), as they arrive. */
  onConflictRecorded(listener: (conflict: OpenConflict) => void): () => void {
    return this.conflicts.onRecorded(listener)
  }

  /** Conflicts recorded for `ask` and not resolved yet. */
  openConflicts(): OpenConflict[] {
    return this.conflicts.open()
  }

  /** Whether a recorded conflict is settled: a later write replaced its versions (see conflictSettled). */
  isSettled(c: OpenConflict): boolean {
    return conflictSettled(c, this.index.fieldsOf(c.key), this.map)
  }

  /** Forget recorded conflicts that are settled (see isSettled). */
  dropSettledConflicts(origin: unknown): void {
    this.conflicts.dropSettled(origin)
  }

  recordConflict(conflict: OpenConflict, origin: unknown): void {
    this.conflicts.record(conflict, origin)
  }

  clearConflict(id: string, origin: unknown): void {
    this.conflicts.clear(id, origin)
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
    const { fieldFloor, deleteFloor } = floorsOf(this.view, key, rec)
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
      const rec = this.index.slotsOf(key)
      const slots = rec?.get(field)
      if (this.policy === 'merge' && slots?.size === 1 && slots.has(own) && jsonEqual(this.map.get(flatKey(key, field, own))?.v, value)) return
      const seen = rec === undefined ? undefined : bestOf(candidates(this.view, key, rec, '').get(field) ?? [])
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
    return rec === undefined || typeof rec === 'string' || s.t >= floorsOf(this.view, key, rec).deleteFloor
  }

  private clearField(key: string, field: string): void {
    for (const [f, slots] of [...this.index.fieldsOf(key)]) if (f === field) for (const s of [...slots]) this.remove(flatKey(key, field, s))
  }

  private typeOf(field: string): FieldType {
    return fieldTypeOf(this.view, field)
  }

  private assertSetField(field: string): void {
    const type = this.typeOf(field)
    if (type !== 'set' && type !== 'growset') throw new KitsyncError('INVALID_ARGUMENT', `${field} is not a set in ${this.name}`)
  }

  /** Run the writes of `fn` for one record in a transaction, then bring `live` up to date for it. */
  private write(key: string, origin: unknown, fn: () => void, exists?: true): void {
    // Inside a transaction already (a group of queued writes): its origin stands, and a nested
    // doc.transact would only add its bookkeeping per record.
    if (inTransaction(this.doc)) fn()
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
    this.index.add(key, field, slot)
  }

  private remove(flat: string): void {
    this.map.delete(flat)
    this.index.update(flat, false)
  }
}
