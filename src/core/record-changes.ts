import type { JsonValue } from './json.js'
import type { IndexEntry } from './record-index.js'
import { recordKeyOf, type RecordView } from './record-slots.js'
import { versionsOf, type RecordVersion } from './record-versions.js'

export type RecordChange = {
  key: string
  /** The record after the change, or undefined when it was deleted. */
  value: JsonValue | undefined
  /** The transaction origin: the local write marker, or whatever the applier of a remote update passed. */
  origin: unknown
  /** The stamps of the writes the transaction left in the record's slots (its new versions; see record-versions.ts). */
  stamps?: readonly string[]
  /** Those versions, read from the slots (call it before the next transaction). */
  versions?(): RecordVersion[]
}

/** What a change reads its value from (the RecordCollection). */
export interface RecordSource {
  get(key: string): JsonValue | undefined
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
export function lazyChanges(collection: RecordSource, keys: string[], origin: unknown, slots?: ChangedSlots): RecordChange[] {
  const stamps = slots === undefined ? undefined : stampsOf(slots)
  return keys.map((key) => {
    const change: RecordChange = {
      key,
      origin,
      get value() {
        return collection.get(key)
      },
    }
    // Not enumerable: a change that callers spread, log or compare stays {key, value, origin}.
    if (stamps !== undefined && slots !== undefined) {
      const list = stamps.get(key) ?? []
      const { view, entry } = slots
      Object.defineProperty(change, 'stamps', { value: list, enumerable: false })
      Object.defineProperty(change, 'versions', { value: () => versionsOf(view, key, entry(key), list), enumerable: false })
    }
    return change
  })
}

/** The slots a transaction changed (flat keys, see record-slots.ts), and the collection to read them from. */
export interface ChangedSlots {
  flats: Iterable<string | null>
  view: RecordView
  /** A record's index entry now. */
  entry(key: string): IndexEntry | undefined
}

/**
 * Record key -> the stamps of the slots the transaction left (each a new version of the record,
 * see record-versions.ts): a removed slot is not there any more, and leaves none.
 */
function stampsOf({ flats, view }: ChangedSlots): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const flat of flats) {
    if (flat === null) continue
    const key = recordKeyOf(flat)
    const t = key === undefined ? undefined : view.slots.get(flat)?.t
    if (key === undefined || typeof t !== 'string') continue
    const list = out.get(key)
    if (list === undefined) out.set(key, [t])
    else if (!list.includes(t)) list.push(t)
  }
  return out
}

/** The records of `keys` as one object, key -> value (records without a value left out). */
export function recordsObject(collection: RecordSource, keys: Iterable<string>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {}
  for (const key of keys) {
    const v = collection.get(key)
    if (v === undefined) continue
    // `out.__proto__ = v` would set the prototype, not add the record `__proto__`.
    if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
    else out[key] = v
  }
  return out
}
