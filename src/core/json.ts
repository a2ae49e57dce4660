import { KitsyncError } from './errors.js'

export type JsonPrimitive = string | number | boolean | null
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Deepest nesting of arrays and objects a value may have (`[]` is 1 level, `[[1]]` 2). The
 * checks, JSON.stringify and the Yjs encoder recurse: some 10,000 levels overflow the stack.
 */
export const MAX_JSON_DEPTH = 256

function tooDeep(what: string): KitsyncError {
  return new KitsyncError('INVALID_ARGUMENT', `${what} is nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`)
}

/** Parse user-supplied JSON text, failing with INVALID_JSON and a short reason (INVALID_ARGUMENT when nested too deep). */
export function parseJson(text: string, what = 'value'): JsonValue {
  let value: JsonValue
  try {
    value = JSON.parse(text) as JsonValue
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new KitsyncError('INVALID_JSON', `${what} is not valid JSON: ${reason}`)
  }
  if (deeperThan(value, MAX_JSON_DEPTH)) throw tooDeep(what)
  return value
}

/** Whether a parsed value nests more than `levels` arrays and objects (recurses at most levels + 1 deep). */
function deeperThan(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (levels === 0) return true
  for (const v of Array.isArray(value) ? value : Object.values(value)) if (deeperThan(v, levels - 1)) return true
  return false
}

/**
 * Check that a value is plain JSON (what JSON.parse could have produced): no undefined,
 * functions, NaN, class instances or cycles. Library callers can pass anything. The check
 * allocates nothing for a valid value; the path of a bad part is worked out only to name it.
 */
export function assertJsonValue(value: unknown, path = 'value'): asserts value is JsonValue {
  const shallow = isShallowJson(value, 0)
  if (shallow === true) return
  if (shallow === TOO_DEEP) {
    const plain = isPlainJson(value, [])
    if (plain === true) return
    if (plain === TOO_DEEP) throw tooDeep(path)
  }
  describeBadJson(value, path, new Set())
  throw new KitsyncError('INVALID_ARGUMENT', `${path} is not a JSON value`)
}

/**
 * Nesting depth checked without keeping track of the parents (a cycle is infinitely deep, so it
 * goes past this): the check of the usual record allocates nothing, where a parents array was
 * the largest garbage of a queued write.
 */
const SHALLOW_DEPTH = 32
const TOO_DEEP = 'too-deep'

/** isPlainJson for values up to SHALLOW_DEPTH deep; TOO_DEEP when it would have to go deeper. */
function isShallowJson(value: unknown, depth: number): boolean | typeof TOO_DEEP {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true
  if (typeof value === 'number') return Number.isFinite(value)
  if (typeof value !== 'object') return false
  if (depth === SHALLOW_DEPTH) return TOO_DEEP
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const ok = isShallowJson(value[i], depth + 1)
      if (ok !== true) return ok
    }
    return true
  }
  const proto = Object.getPrototypeOf(value) as unknown
  if (proto !== Object.prototype && proto !== null) return false
  for (const k in value) {
    if (!Object.hasOwn(value, k)) continue
    if (k === '__proto__') return false
    const ok = isShallowJson((value as Record<string, unknown>)[k], depth + 1)
    if (ok !== true) return ok
  }
  return true
}

/** Whether a value is plain JSON; TOO_DEEP when it nests more than MAX_JSON_DEPTH levels (a cycle is found before). */
function isPlainJson(value: unknown, parents: object[]): boolean | typeof TOO_DEEP {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true
  if (typeof value === 'number') return Number.isFinite(value)
  if (typeof value !== 'object') return false
  if (parents.includes(value)) return false
  if (parents.length === MAX_JSON_DEPTH) return TOO_DEEP
  parents.push(value)
  let ok: boolean | typeof TOO_DEEP = true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && ok === true; i++) ok = isPlainJson(value[i], parents)
  } else {
    const proto = Object.getPrototypeOf(value) as unknown
    if (proto !== Object.prototype && proto !== null) ok = false
    else
      for (const k in value) if (ok === true && Object.hasOwn(value, k)) ok = k !== '__proto__' && isPlainJson((value as Record<string, unknown>)[k], parents)
  }
  parents.pop()
  return ok
}

/** Throws the INVALID_ARGUMENT error that names the first part of `value` that is not JSON. */
function describeBadJson(value: unknown, path: string, seen: Set<object>): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new KitsyncError('INVALID_ARGUMENT', `${path} is not a finite number`)
    return
  }
  if (typeof value !== 'object') throw new KitsyncError('INVALID_ARGUMENT', `${path} is not a JSON value (${typeof value})`)
  if (seen.has(value)) throw new KitsyncError('INVALID_ARGUMENT', `${path} contains a cycle`)
  // `seen` holds the parents: a bad part deeper than the limit is reported as too deep.
  if (seen.size === MAX_JSON_DEPTH) throw tooDeep(path)
  seen.add(value)
  if (Array.isArray(value)) {
    value.forEach((item, i) => describeBadJson(item, `${path}[${i}]`, seen))
  } else {
    const proto = Object.getPrototypeOf(value) as unknown
    if (proto !== Object.prototype && proto !== null) {
      throw new KitsyncError('INVALID_ARGUMENT', `${path} is not a plain object`)
    }
    for (const [k, v] of Object.entries(value)) {
      // Yjs (like any plain object) would take it as the prototype: the value would be lost.
      if (k === '__proto__') throw new KitsyncError('INVALID_ARGUMENT', `${path} has a key named __proto__, which cannot be stored`)
      describeBadJson(v, `${path}.${k}`, seen)
    }
  }
  seen.delete(value)
}

export function jsonByteLength(value: JsonValue): number {
  return utf8Length(JSON.stringify(value))
}

/** UTF-8 byte length of a string, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) bytes += 1
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 2 // surrogate pair: 4 bytes for 2 units
      i++
    } else bytes += 2
  }
  return bytes
}

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  return JSON.stringify(a) === JSON.stringify(b)
}
