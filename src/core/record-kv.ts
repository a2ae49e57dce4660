import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'
import { appendEntry, deleteEntry, forEachAdded, forEachDeleted, forEachEntry, isRightOf, type EntryId } from './yjs-internals.js'

/**
 * A key-value map of slots kept in a Y.Array of `{k, v}` entries (layout 2, after y-utility's
 * YKeyValue). A set deletes the key's old entry and appends a new one, so under Yjs's GC one
 * writer's overwrites merge into ranges of deleted items: 100 keys overwritten 1,000 times
 * take a few KB, where a Y.Map keeps every overwritten item (about 1 MB, storage.md §2.1).
 *
 * - **Current entry.** `flat key -> value` and `flat key -> Yjs id` are kept here, so a set or
 *   delete removes the old entry's item directly (yjs-internals.ts), never by a walk.
 * - **Duplicates.** Two devices that set one key concurrently each append an entry. The
 *   rightmost entry of the array is the key's value on every device (the array's order is the
 *   same everywhere), and a device that sees both deletes the other, in a transaction of its
 *   own right after the one that brought it (origin KV_DEDUP). After a remote transaction only
 *   the entries it added or deleted are looked at.
 * - **Deletes** remove the entry items their writer holds, so an entry appended concurrently
 *   survives a delete, as a Y.Map entry does.
 * - **Entries are binary.** Each is one Yjs binary item (ContentBinary) holding lib0's
 *   `writeAny` encoding of `{k, v}`. Yjs merges consecutive JSON items of one writer into one
 *   item and concatenates their arrays, so with JSON entries every append copied the writer's
 *   whole run of live entries and every delete split it (1,390 new records/s into 100,000,
 *   135 overwrites/s); binary items are never merged while live. Deleted, they are garbage
 *   collected to ContentDeleted, which merges into ranges as before.
 */

export interface KvEntry<V> {
  k: string
  v: V
}

/** The bytes of one entry, as the array holds them. */
export function encodeEntry(k: string, v: unknown): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeAny(e, { k, v } as encoding.AnyEncodable)
  return encoding.toUint8Array(e)
}

/** An entry from its bytes; undefined if they are not one (nothing else writes into the array). */
export function decodeEntry(value: unknown): KvEntry<unknown> | undefined {
  if (!(value instanceof Uint8Array)) return undefined
  try {
    const entry = decoding.readAny(decoding.createDecoder(value)) as unknown
    return typeof entry === 'object' && entry !== null && typeof (entry as { k?: unknown }).k === 'string' ? (entry as KvEntry<unknown>) : undefined
  } catch {
    return undefined
  }
}

/** What one transaction changed: the keys whose value (or presence) changed. */
export type KvObserver = (keys: Iterable<string>, tx: Y.Transaction) => void

/** Origin of the transaction that deletes the losing entries of concurrent sets. */
export const KV_DEDUP = Symbol('kitsync:kv-dedup')

/** The map operations RecordCollection needs, on either layout (a Y.Map or a RecordKv). */
export interface SlotStore<V> {
  get(key: string): V | undefined
  has(key: string): boolean
  set(key: string, value: V): void
  delete(key: string): void
  entries(): IterableIterator<[string, V]>
  readonly size: number
  /** Called after each transaction that changed a key, with the keys it changed. */
  observe(fn: KvObserver): void
}

export class RecordKv<V> implements SlotStore<V> {
  readonly array: Y.Array<Uint8Array>
  private readonly doc: Y.Doc
  private readonly values = new Map<string, V>()
  private readonly ids = new Map<string, EntryId>()
  /** Keys set or deleted by this device in the running transaction. */
  private readonly local = new Set<string>()
  private readonly observers: KvObserver[] = []
  /** The last entry this device appended: where the next append looks for the array's end. */
  private tail: EntryId | undefined

  constructor(doc: Y.Doc, name: string) {
    this.doc = doc
    this.array = doc.getArray<Uint8Array>(name)
    const losers: EntryId[] = []
    // Left to right: a later entry of a key is further right, so it wins.
    forEachEntry(this.array, (bytes, id) => {
      const value = decodeEntry(bytes)
      if (value === undefined) return
      const old = this.ids.get(value.k)
      if (old !== undefined) losers.push(old)
      this.values.set(value.k, value.v as V)
      this.ids.set(value.k, id)
      this.tail = id
    })
    this.removeLosers(losers)
    this.array.observe((_event, tx) => this.observed(tx))
  }

  get size(): number {
    return this.values.size
  }

  get(key: string): V | undefined {
    return this.values.get(key)
  }

  has(key: string): boolean {
    return this.values.has(key)
  }

  entries(): IterableIterator<[string, V]> {
    return this.values.entries()
  }

  observe(fn: KvObserver): void {
    this.observers.push(fn)
  }

  set(key: string, value: V): void {
    this.doc.transact((tr) => {
      const old = this.ids.get(key)
      if (old !== undefined) deleteEntry(tr, old)
      const id = appendEntry(tr, this.array, encodeEntry(key, value), this.tail)
      this.tail = id
      this.ids.set(key, id)
      this.values.set(key, value)
      this.local.add(key)
    })
  }

  delete(key: string): void {
    const old = this.ids.get(key)
    if (old === undefined) return
    this.doc.transact((tr) => {
      deleteEntry(tr, old)
      this.ids.delete(key)
      this.values.delete(key)
      this.local.add(key)
    })
  }

  private observed(tx: Y.Transaction): void {
    let changed: Set<string>
    if (tx.local) {
      // This device's own writes kept the maps in step as they went.
      changed = new Set(this.local)
      this.local.clear()
    } else {
      changed = new Set()
      // Deletes first: a remote overwrite deletes the current entry and adds its successor.
      forEachDeleted(tx, this.array, (bytes, id) => {
        const value = decodeEntry(bytes)
        if (value === undefined) return
        const cur = this.ids.get(value.k)
        if (cur === undefined || cur.client !== id.client || cur.clock !== id.clock) return
        this.ids.delete(value.k)
        this.values.delete(value.k)
        changed.add(value.k)
      })
      const losers: EntryId[] = []
      forEachAdded(tx, this.array, (bytes, id) => {
        const value = decodeEntry(bytes)
        if (value === undefined) return
        const cur = this.ids.get(value.k)
        if (cur !== undefined) {
          // Two entries under one key: the rightmost stays, on every device.
          if (!isRightOf(this.doc, id, cur)) {
            losers.push(id)
            return
          }
          losers.push(cur)
        }
        this.ids.set(value.k, id)
        this.values.set(value.k, value.v as V)
        changed.add(value.k)
      })
      this.removeLosers(losers)
    }
    if (changed.size === 0) return
    for (const fn of this.observers) fn(changed, tx)
  }

  /** Delete the losing entries of concurrent sets, in a transaction after the running one. */
  private removeLosers(losers: EntryId[]): void {
    if (losers.length === 0) return
    this.doc.transact((tr) => {
      for (const id of losers) deleteEntry(tr, id)
    }, KV_DEDUP)
  }
}

/** A Y.Map seen as a SlotStore (layout 1). */
export class MapSlots<V> implements SlotStore<V> {
  readonly map: Y.Map<V>

  constructor(doc: Y.Doc, name: string) {
    this.map = doc.getMap<V>(name)
  }

  get size(): number {
    return this.map.size
  }

  get(key: string): V | undefined {
    return this.map.get(key)
  }

  has(key: string): boolean {
    return this.map.has(key)
  }

  set(key: string, value: V): void {
    this.map.set(key, value)
  }

  delete(key: string): void {
    this.map.delete(key)
  }

  entries(): IterableIterator<[string, V]> {
    return this.map.entries()
  }

  observe(fn: KvObserver): void {
    // keysChanged is a plain set; event.changes.keys would work out an action per key, which
    // costs more than applying the update when a whole collection arrives at once.
    this.map.observe((event, tx) => fn(event.keysChanged as Set<string>, tx))
  }
}
