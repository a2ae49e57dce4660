import { HEADER, SEP } from './record-slots.js'

/** One record's slots present, by field (the header slots under HEADER). */
export type RecordIndex = Map<string, Set<string>>
/**
 * A record's entry in the index: its slots by field, or, for a record held by one header slot
 * and nothing else (one writer's whole writes: most records), just that slot's name. The map
 * and set cost some 350 bytes per record, 40% of a small record's memory, and all of it was
 * copied by the garbage collector when a burst or a catch-up created thousands of records.
 */
export type IndexEntry = RecordIndex | string

/**
 * A collection's records by key -> their slots present (see IndexEntry). The collection keeps it
 * in step with its map: its writes at once, merged updates in its observer.
 */
export class CollectionIndex {
  private readonly entries = new Map<string, IndexEntry>()

  get(key: string): IndexEntry | undefined {
    return this.entries.get(key)
  }

  set(key: string, entry: IndexEntry): void {
    this.entries.set(key, entry)
  }

  keys(): IterableIterator<string> {
    return this.entries.keys()
  }

  /** A record's slots as a map; a record in the compact form gets one (kept: it is about to get more slots). */
  slotsOf(key: string): RecordIndex | undefined {
    const entry = this.entries.get(key)
    if (typeof entry !== 'string') return entry
    const rec: RecordIndex = new Map([[HEADER, new Set([entry])]])
    this.entries.set(key, rec)
    return rec
  }

  /** A record's slots by field, to read: the compact form is not turned into a map. */
  fieldsOf(key: string): Iterable<[string, Iterable<string>]> {
    const entry = this.entries.get(key)
    if (entry === undefined) return []
    return typeof entry === 'string' ? [[HEADER, [entry]]] : entry
  }

  add(key: string, field: string, slot: string): void {
    const entry = this.entries.get(key)
    if (field === HEADER && (entry === undefined || entry === slot)) {
      this.entries.set(key, slot)
      return
    }
    let rec = this.slotsOf(key)
    if (rec === undefined) this.entries.set(key, (rec = new Map()))
    let slots = rec.get(field)
    if (slots === undefined) rec.set(field, (slots = new Set()))
    slots.add(slot)
  }

  /** Keep the index in step with one flat map key; returns the record key. */
  update(flat: string, present: boolean): string | undefined {
    const i = flat.indexOf(SEP)
    const j = flat.indexOf(SEP, i + 1)
    if (i < 0 || j < 0) return undefined
    const key = flat.slice(0, i)
    const field = flat.slice(i + 1, j)
    const slot = flat.slice(j + 1)
    if (present) {
      this.add(key, field, slot)
      return key
    }
    const rec = this.entries.get(key)
    if (typeof rec === 'string') {
      if (field === HEADER && slot === rec) this.entries.delete(key)
    } else if (rec !== undefined) {
      const slots = rec.get(field)
      slots?.delete(slot)
      if (slots !== undefined && slots.size === 0) rec.delete(field)
      if (rec.size === 0) this.entries.delete(key)
    }
    return key
  }
}
