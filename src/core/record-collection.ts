import * as Y from 'yjs'
import { KitsyncError } from './errors.js'
import { isJsonObject, jsonByteLength, type JsonObject, type JsonValue } from './json.js'
import { assertFieldName, assertRecordKey } from './names.js'

/**
 * A collection of JSON records kept in one Y.Doc.
 *
 * Layout: one flat Y.Map named `records`, so that every field of every record is its own
 * last-writer-wins register and two devices that create the same record concurrently still
 * merge field by field (nested Y.Maps created concurrently would replace each other whole).
 *
 *   `<key>`           record header: `{}` for an object record, `{"$": value}` for any other value
 *   `<key>\0<field>`  one top-level field of an object record
 *
 * Keys cannot contain control characters, so the first NUL separates key and field.
 * Other shared types (append-only logs, sets, text) live beside `records` in the same doc,
 * so adding them later needs no new storage format: storage only ever sees Yjs updates.
 */

export const RECORDS_MAP = 'records'
const SEP = '\u0000'

type Header = { $?: JsonValue }

export type RecordChange = {
  key: string
  /** The record after the change, or undefined when it was deleted. */
  value: JsonValue | undefined
  /** The transaction origin: the local write marker, or whatever the applier of a remote update passed. */
  origin: unknown
}

export interface RecordCollectionOptions {
  /** Largest record, as JSON bytes. Writes over it fail with RECORD_TOO_LARGE. */
  maxRecordBytes?: number
}

export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024

export class RecordCollection {
  readonly name: string
  readonly doc: Y.Doc
  readonly maxRecordBytes: number
  private readonly map: Y.Map<JsonValue>
  /** record key -> names of its fields, kept in step with the map by the observer. */
  private readonly fields = new Map<string, Set<string>>()
  private readonly listeners = new Set<(changes: RecordChange[]) => void>()

  constructor(name: string, doc: Y.Doc = new Y.Doc(), options: RecordCollectionOptions = {}) {
    this.name = name
    this.doc = doc
    this.maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES
    this.map = doc.getMap<JsonValue>(RECORDS_MAP)
    for (const flat of this.map.keys()) this.index(flat, true)
    this.map.observe((event, tx) => {
      const touched = new Set<string>()
      // keysChanged is a plain set; event.changes.keys would work out an action per key, which
      // costs more than applying the update when a whole collection arrives at once.
      for (const flat of event.keysChanged) {
        if (flat !== null) touched.add(this.index(flat, this.map.has(flat)))
      }
      if (this.listeners.size === 0) return
      // Values are computed only when asked for: most changes have no one watching them.
      const changes = [...touched].map((key) => {
        const get = (): JsonValue | undefined => this.get(key)
        return {
          key,
          origin: tx.origin,
          get value() {
            return get()
          },
        }
      })
      for (const listener of this.listeners) listener(changes)
    })
  }

  /** Subscribe to record changes, one call per transaction. Returns the unsubscribe function. */
  onChange(listener: (changes: RecordChange[]) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  has(key: string): boolean {
    return this.map.has(key) || (this.fields.get(key)?.size ?? 0) > 0
  }

  get(key: string): JsonValue | undefined {
    const header = this.map.get(key) as Header | undefined
    if (header !== undefined && isJsonObject(header) && Object.hasOwn(header, '$')) return header.$ as JsonValue
    const names = this.fields.get(key)
    if (header === undefined && (names === undefined || names.size === 0)) return undefined
    const out: JsonObject = {}
    for (const field of [...(names ?? [])].sort()) {
      const v = this.map.get(key + SEP + field)
      if (v !== undefined) out[field] = v
    }
    return out
  }

  keys(): string[] {
    const keys = new Set<string>()
    for (const flat of this.map.keys()) {
      const i = flat.indexOf(SEP)
      keys.add(i < 0 ? flat : flat.slice(0, i))
    }
    return [...keys].sort()
  }

  get size(): number {
    return this.keys().length
  }

  entries(): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {}
    for (const key of this.keys()) {
      const v = this.get(key)
      if (v !== undefined) out[key] = v
    }
    return out
  }

  /** Replace a record with `value` (or, with `field`, set one top-level field of it). */
  set(key: string, value: JsonValue, origin: unknown, field?: string): void {
    assertRecordKey(key)
    if (field !== undefined) assertFieldName(field)
    const next = field === undefined ? value : { ...this.objectOrEmpty(key), [field]: value }
    const size = jsonByteLength({ [key]: next })
    if (size > this.maxRecordBytes) {
      throw new KitsyncError('RECORD_TOO_LARGE', `record ${JSON.stringify(key)} in ${this.name} is ${size} bytes, over the limit of ${this.maxRecordBytes}`, {
        details: { collection: this.name, size, limit: this.maxRecordBytes },
      })
    }
    this.doc.transact(() => {
      if (!isJsonObject(next)) {
        this.map.set(key, { $: value })
        for (const f of [...(this.fields.get(key) ?? [])]) this.map.delete(key + SEP + f)
        return
      }
      const header = this.map.get(key) as Header | undefined
      if (header === undefined || !isJsonObject(header) || Object.hasOwn(header, '$')) this.map.set(key, {})
      for (const [f, v] of Object.entries(next)) {
        // Writing an unchanged value would only leave a deleted item behind.
        if (!jsonEqual(this.map.get(key + SEP + f), v)) this.map.set(key + SEP + f, v)
      }
      if (field === undefined) {
        for (const f of [...(this.fields.get(key) ?? [])]) if (!Object.hasOwn(next, f)) this.map.delete(key + SEP + f)
      }
    }, origin)
  }

  /** Delete a record. Returns false when there was none. */
  delete(key: string, origin: unknown): boolean {
    assertRecordKey(key)
    if (!this.has(key)) return false
    this.doc.transact(() => {
      this.map.delete(key)
      for (const f of [...(this.fields.get(key) ?? [])]) this.map.delete(key + SEP + f)
    }, origin)
    return true
  }

  private objectOrEmpty(key: string): JsonObject {
    const current = this.get(key)
    return isJsonObject(current) ? current : {}
  }

  /** Keep the field index in step with one flat map key; returns the record key. */
  private index(flat: string, present: boolean): string {
    const i = flat.indexOf(SEP)
    if (i < 0) return flat
    const key = flat.slice(0, i)
    const field = flat.slice(i + 1)
    let set = this.fields.get(key)
    if (present) {
      if (set === undefined) this.fields.set(key, (set = new Set()))
      set.add(field)
    } else if (set !== undefined) {
      set.delete(field)
      if (set.size === 0) this.fields.delete(key)
    }
    return key
  }
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  return JSON.stringify(a) === JSON.stringify(b)
}
