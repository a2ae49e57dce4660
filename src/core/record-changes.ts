import type { JsonValue } from './json.js'

export type RecordChange = {
  key: string
  /** The record after the change, or undefined when it was deleted. */
  value: JsonValue | undefined
  /** The transaction origin: the local write marker, or whatever the applier of a remote update passed. */
  origin: unknown
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
export function lazyChanges(collection: RecordSource, keys: string[], origin: unknown): RecordChange[] {
  return keys.map((key) => ({
    key,
    origin,
    get value() {
      return collection.get(key)
    },
  }))
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
