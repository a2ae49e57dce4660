import type * as Y from 'yjs'
import { MapSlots, RecordKv, type KvObserver, type SlotStore } from './record-kv.js'
import { RECORDS_MAP } from './record-slots.js'
import { rootHasContent } from './yjs-internals.js'

/**
 * Where a collection's slots live in its Y.Doc (RECORDS.md, "Layout of a collection"):
 *   1  one flat Y.Map `records` (flat slot key -> slot): collections created before sync 2
 *   2  one Y.Array `slots` of `{k: flat slot key, v: slot}` entries (record-kv.ts): every
 *      collection created since
 * A collection keeps the layout it was created with: converting one needs the compaction
 * epochs of docs/design/storage.md (a later step).
 */
export type RecordLayout = 1 | 2

export const RECORDS_ARRAY = 'slots'
/** The layout of a collection this version creates. */
export const NEW_LAYOUT: RecordLayout = 2

export function isRecordLayout(value: unknown): value is RecordLayout {
  return value === 1 || value === 2
}

/**
 * The layout a document's content shows, if it shows one: the layout of the root that holds
 * items, 1 when both do (see LayoutSlots).
 */
export function layoutOfContent(doc: Y.Doc): RecordLayout | undefined {
  if (rootHasContent(doc, RECORDS_MAP)) return 1
  if (rootHasContent(doc, RECORDS_ARRAY)) return 2
  return undefined
}

/**
 * The slots of a collection on whichever layout it has. The document decides, as every device
 * holds the same one: the layout whose root holds items; for an empty document the one the
 * store recorded (`m!` metadata), else the first transaction that brings content decides: a
 * remote update (a peer's copy, the blind store, a joining device's membership) brings its
 * writer's layout, a local write brings NEW_LAYOUT. So every device reads a collection by the
 * layout its creator chose, however its first state reached it.
 *
 * Both roots are watched. A document whose two roots both hold items (one name created apart,
 * offline, on a device of layout 1 and on one of layout 2) is `mixed` and read as layout 1 on
 * every device: a layout-2 device that receives layout-1 slots switches to them (its own
 * layout-2 slots stay in the document, unread, for the conversion of a later version), and
 * `onMixed` is told once.
 */
export class LayoutSlots<V> implements SlotStore<V> {
  private active: SlotStore<V> | undefined
  private current: RecordLayout | undefined
  private readonly stores: Record<RecordLayout, SlotStore<V>>
  private readonly observers: KvObserver[] = []
  mixed = false
  onMixed: (() => void) | undefined

  constructor(doc: Y.Doc, recorded?: RecordLayout) {
    const layout = layoutOfContent(doc) ?? recorded
    this.stores = { 1: new MapSlots<V>(doc, RECORDS_MAP), 2: new RecordKv<V>(doc, RECORDS_ARRAY) }
    if (layout !== undefined) this.decide(layout)
    this.mixed = rootHasContent(doc, RECORDS_MAP) && rootHasContent(doc, RECORDS_ARRAY)
    for (const l of [1, 2] as const) {
      this.stores[l].observe((keys, tx) => {
        if (this.current === undefined) this.decide(l)
        if (this.current === l) {
          for (const fn of this.observers) fn(keys, tx)
          return
        }
        if (!this.mixed) {
          this.mixed = true
          this.onMixed?.()
        }
        if (l === 2) return
        // Layout-1 slots arrived in a layout-2 document: read layout 1 from now on. Every key
        // of either layout may have changed: the collection works each out again.
        const changed = new Set<string>()
        for (const [k] of this.stores[2].entries()) changed.add(k)
        for (const [k] of this.stores[1].entries()) changed.add(k)
        this.decide(1)
        for (const fn of this.observers) fn(changed, tx)
      })
    }
  }

  /** The layout, once decided (undefined: the document holds nothing yet). */
  get layout(): RecordLayout | undefined {
    return this.current
  }

  private decide(layout: RecordLayout): SlotStore<V> {
    this.current = layout
    this.active = this.stores[layout]
    return this.active
  }

  get size(): number {
    return this.active?.size ?? 0
  }

  get(key: string): V | undefined {
    return this.active?.get(key)
  }

  has(key: string): boolean {
    return this.active?.has(key) ?? false
  }

  set(key: string, value: V): void {
    ;(this.active ?? this.decide(NEW_LAYOUT)).set(key, value)
  }

  delete(key: string): void {
    this.active?.delete(key)
  }

  entries(): IterableIterator<[string, V]> {
    return (this.active ?? this.stores[NEW_LAYOUT]).entries()
  }

  observe(fn: KvObserver): void {
    this.observers.push(fn)
  }
}
