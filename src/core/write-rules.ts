import { KitsyncError } from './errors.js'
import { isJsonObject, type JsonValue } from './json.js'
import type { EffectiveSettings } from './kinds.js'
import type { RecordCollection } from './record-collection.js'
import type { AppendOptions } from './workspace-types.js'

/**
 * The rules of a local write, applied to a collection under its settings (kind, limits, secret
 * rules): what a write may change, how its value is checked, and what it leaves in the
 * collection. Each function runs inside the caller's transaction; `origin` marks the writes it
 * makes and `now` is the wall clock the kind checks against. Nothing here does I/O.
 */

/** A whole-record set: the kind checks the value, the limits the record it makes. */
export function setRecord(c: RecordCollection, rules: EffectiveSettings, key: string, value: JsonValue, origin: unknown, now: number): void {
  assertNotAppendOnly(c, rules, key)
  const checked = rules.kind.validate(value, { collection: c.name, secretRules: rules.secretRules, now })
  checkLimits(c, rules, key, checked)
  c.set(key, checked, origin)
}

/** A set of one field: the kind checks the record as the field leaves it. */
export function setField(c: RecordCollection, rules: EffectiveSettings, key: string, field: string, value: JsonValue, origin: unknown, now: number): void {
  assertNotAppendOnly(c, rules, key)
  const current = c.get(key)
  const whole = { ...(isJsonObject(current) ? current : {}), [field]: value }
  const checked = rules.kind.validate(whole, { collection: c.name, secretRules: rules.secretRules, now })
  checkLimits(c, rules, key, checked)
  c.set(key, isJsonObject(checked) ? (checked[field] ?? value) : value, origin, field)
}

function assertNotAppendOnly(c: RecordCollection, rules: EffectiveSettings, key: string): void {
  if (rules.kind.appendOnly === true && c.has(key)) {
    throw new KitsyncError('APPEND_ONLY', `${c.name} is append-only (${rules.kind.name}): record ${JSON.stringify(key)} exists and cannot be changed`, {
      details: { collection: c.name },
    })
  }
}

/** Delete a record; false if there was none. An append-only kind keeps its records. */
export function deleteRecord(c: RecordCollection, rules: EffectiveSettings, key: string, origin: unknown): boolean {
  if (rules.kind.appendOnly === true && c.has(key)) {
    throw new KitsyncError('APPEND_ONLY', `${c.name} is append-only (${rules.kind.name}): records cannot be deleted`, { details: { collection: c.name } })
  }
  return c.delete(key, origin)
}

/** Add elements to a set field, within the set size limit (and the record limit for a new record). */
export function addToSet(c: RecordCollection, rules: EffectiveSettings, key: string, field: string, elements: string[], origin: unknown): void {
  if (rules.kind.appendOnly === true && c.has(key))
    throw new KitsyncError('APPEND_ONLY', `${c.name} is append-only: record ${JSON.stringify(key)} cannot be changed`, { details: { collection: c.name } })
  const current = c.get(key)
  const before = isJsonObject(current) && Array.isArray(current[field]) ? (current[field] as JsonValue[]) : []
  const next = [...new Set([...before, ...elements])]
  if (!c.has(key)) checkLimits(c, rules, key, { [field]: next })
  else checkSetSize(c.name, rules, field, next.length)
  c.addToSet(key, field, elements, origin)
}

/**
 * Append: an entry of an append-only list field (`options.field`), a record per distinct entry
 * for a kind with `keyOf` (a repeat updates its counters), or a new record under a fresh key.
 */
export function appendRecord(
  c: RecordCollection,
  rules: EffectiveSettings,
  value: JsonValue,
  options: AppendOptions,
  origin: unknown,
  now: number,
): { key: string } {
  const collection = c.name
  const ctx = { collection, secretRules: rules.secretRules, now }
  if (options.field !== undefined) {
    const key = options.key
    if (key === undefined) throw new KitsyncError('INVALID_ARGUMENT', 'appending to a field needs the record key')
    if (c.fieldTypes[options.field] !== 'log')
      throw new KitsyncError('INVALID_ARGUMENT', `${options.field} is not an append-only list in ${collection} (${rules.kind.name})`, {
        details: { collection },
      })
    if (!c.has(key)) checkLimits(c, rules, key, {})
    c.appendToLog(key, options.field, value, origin)
    return { key }
  }
  const checked = rules.kind.validate(value, ctx)
  if (rules.kind.keyOf !== undefined && isJsonObject(checked)) {
    // A record per distinct entry (history: command + session); a repeat updates its counters.
    const key = options.key ?? rules.kind.keyOf(checked)
    const current = c.get(key)
    const at = typeof checked.at === 'number' ? checked.at : ctx.now
    if (isJsonObject(current)) {
      const count = typeof current.count === 'number' ? current.count + 1 : 2
      c.set(key, count, origin, 'count')
      c.set(key, Math.max(at, typeof current.lastAt === 'number' ? current.lastAt : 0), origin, 'lastAt')
      for (const f of ['cwd', 'exitCode'] as const) if (checked[f] !== undefined) c.set(key, checked[f] as JsonValue, origin, f)
    } else {
      const { at: _at, ...rest } = checked
      const record = { ...rest, firstAt: at, lastAt: at, count: 1 }
      checkLimits(c, rules, key, record)
      c.set(key, record, origin)
    }
    return { key }
  }
  const key = options.key ?? c.clock.now()
  if (c.has(key)) throw new KitsyncError('APPEND_ONLY', `${collection} already has a record ${JSON.stringify(key)}`, { details: { collection } })
  checkLimits(c, rules, key, checked)
  c.set(key, checked, origin)
  return { key }
}

/** The record limit (for a record not there yet) and the set size limit of each set field of `value`. */
export function checkLimits(c: RecordCollection, rules: EffectiveSettings, key: string, value: JsonValue): void {
  const max = rules.limits.maxRecords
  if (max !== undefined && !c.has(key) && c.size >= max) {
    throw new KitsyncError('LIMIT_EXCEEDED', `${c.name} holds ${c.size} records, the limit for ${rules.kind.name} is ${max}`, {
      details: { collection: c.name, limit: 'maxRecords', max },
    })
  }
  if (isJsonObject(value)) {
    const types = c.fieldTypes
    for (const field in types) {
      const type = types[field]
      const v = value[field]
      if ((type === 'set' || type === 'growset') && Array.isArray(v)) checkSetSize(c.name, rules, field, new Set(v).size)
    }
  }
}

export function checkSetSize(collection: string, rules: EffectiveSettings, field: string, size: number): void {
  const max = rules.limits.maxSetSize
  if (max !== undefined && size > max) {
    throw new KitsyncError('LIMIT_EXCEEDED', `${field} would hold ${size} elements, the limit in ${collection} (${rules.kind.name}) is ${max}`, {
      details: { collection, limit: 'maxSetSize', max },
    })
  }
}
