import { isErrorCode, KitsyncError, toKitsyncError } from './errors.js'
import { assertJsonValue, isJsonObject, jsonEqual, type JsonValue } from './json.js'
import { effectiveSettings, isKindName, toCollectionSettings, type EffectiveSettings } from './kinds.js'
import { assertCollectionName, assertRecordKey } from './names.js'
import { checkRecordSize } from './record-checks.js'
import type { ImportCollection, ImportProblem, ImportSource } from './transfer-types.js'
import type { CollectionSettingsView } from './workspace-types.js'

/**
 * What an import would do to one collection, worked out before anything is written: each
 * record checked as a write would check it (its kind, the record size, the field types, an
 * append-only kind), and compared with what the workspace holds. Pure: the caller looks the
 * current records up and writes.
 */

export type RecordStatus = 'added' | 'changed' | 'unchanged'

/** An import source as it came (the control API, a library caller): checked for its shape, records not yet checked. */
export function toImportSource(value: unknown): ImportSource {
  if (!isJsonObject(value) || !isJsonObject(value.collections))
    throw new KitsyncError('INVALID_ARGUMENT', 'an import source is { collections: { NAME: { records: { KEY: VALUE } } } }')
  for (const [name, c] of Object.entries(value.collections)) {
    if (!isJsonObject(c) || !isJsonObject(c.records) || (c.settings !== undefined && !isJsonObject(c.settings)))
      throw new KitsyncError('INVALID_ARGUMENT', `import source: collection ${JSON.stringify(name)} needs { records: { KEY: VALUE } } and optional settings`, {
        details: { collection: name },
      })
  }
  return value as unknown as ImportSource
}

/** The rules records of an imported collection are checked against: the workspace's, or the source's for a new collection. */
export function importRules(name: string, existing: CollectionSettingsView | undefined, holdsRecords: boolean, source: ImportCollection): EffectiveSettings {
  assertCollectionName(name)
  const wanted = source.settings
  if (wanted?.kind !== undefined && !isKindName(wanted.kind)) {
    throw new KitsyncError('INVALID_ARGUMENT', `${name}: unknown kind ${JSON.stringify(wanted.kind)} in the import`, { details: { collection: name } })
  }
  if (holdsRecords || wanted === undefined) {
    if (existing === undefined) return effectiveSettings(toCollectionSettings(name, undefined))
    return effectiveSettings(
      toCollectionSettings(name, { kind: existing.kind, policy: existing.policy, limits: existing.limits, secretRules: existing.secretRules }),
    )
  }
  return effectiveSettings(
    toCollectionSettings(name, {
      kind: wanted.kind ?? existing?.kind ?? null,
      policy: wanted.policy ?? existing?.policy ?? null,
      limits: { ...(existing?.limits ?? {}), ...(wanted.limits ?? {}) },
      secretRules: existing?.secretRules ?? [],
    }),
  )
}

/** Check one record of the source against the rules; returns the value to write and what it does. */
export function planRecord(
  collection: string,
  rules: EffectiveSettings,
  key: string,
  value: unknown,
  current: JsonValue | undefined,
  options: { now: number; maxRecordBytes: number },
): { status: RecordStatus; value: JsonValue } {
  assertRecordKey(key)
  assertJsonValue(value)
  const checked = rules.kind.validate(value, { collection, secretRules: rules.secretRules, now: options.now })
  checkRecordSize(collection, key, checked, options.maxRecordBytes)
  if (current !== undefined && jsonEqual(current, checked)) return { status: 'unchanged', value: checked }
  if (current !== undefined && rules.kind.appendOnly === true) {
    throw new KitsyncError('APPEND_ONLY', `${collection} is append-only (${rules.kind.name}): record ${JSON.stringify(key)} exists with another value`, {
      details: { collection },
    })
  }
  checkTypedFields(collection, rules, checked, current)
  return { status: current === undefined ? 'added' : 'changed', value: checked }
}

/** Sets are arrays of strings; a growset loses no element and a log no entry (as checkField for a write). */
function checkTypedFields(collection: string, rules: EffectiveSettings, next: JsonValue, current: JsonValue | undefined): void {
  if (!isJsonObject(next)) return
  for (const [field, type] of Object.entries(rules.kind.fieldTypes)) {
    const v = next[field]
    if (v === undefined) continue
    if (!Array.isArray(v)) throw new KitsyncError('INVALID_RECORD', `${field} in ${collection} is a ${type === 'log' ? 'list' : 'set'}: give an array`)
    const before = isJsonObject(current) && Array.isArray(current[field]) ? (current[field] as JsonValue[]) : []
    if (type === 'log') {
      if (v.length < before.length || !before.every((e, i) => jsonEqual(e, v[i])))
        throw new KitsyncError('APPEND_ONLY', `${field} in ${collection} is append-only: the import would change or remove entries`, {
          details: { collection },
        })
      continue
    }
    if (v.some((e) => typeof e !== 'string'))
      throw new KitsyncError('INVALID_RECORD', `${field} in ${collection} is a set of strings`, { details: { collection } })
    if (type === 'growset') {
      const kept = new Set(v as string[])
      const lost = before.find((e) => typeof e === 'string' && !kept.has(e))
      if (lost !== undefined)
        throw new KitsyncError('APPEND_ONLY', `${field} in ${collection} is append-only: the import would remove ${JSON.stringify(lost)}`, {
          details: { collection },
        })
    }
  }
}

/** The limit on records: what the collection would hold after the import. */
export function checkRecordLimit(collection: string, rules: EffectiveSettings, after: number): void {
  const max = rules.limits.maxRecords
  if (max !== undefined && after > max) {
    throw new KitsyncError('LIMIT_EXCEEDED', `${collection} would hold ${after} records, the limit for ${rules.kind.name} is ${max}`, {
      details: { collection, limit: 'maxRecords', max },
    })
  }
}

/** A thrown error as a problem of the import. */
export function problemOf(collection: string, key: string | undefined, err: unknown): ImportProblem {
  const e = toKitsyncError(err)
  return key === undefined ? { collection, code: e.code, message: e.message } : { collection, key, code: e.code, message: e.message }
}

/** Problems listed in an error's details at most (the count is always given). */
export const MAX_LISTED_PROBLEMS = 20

/** The error an import with problems fails with: the first problem's code, all of them counted. */
export function importError(problems: ImportProblem[]): KitsyncError {
  const first = problems[0] as ImportProblem
  const where = first.key === undefined ? first.collection : `${first.collection}/${JSON.stringify(first.key)}`
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : ''
  return new KitsyncError(isErrorCode(first.code) ? first.code : 'INVALID_RECORD', `nothing imported: ${where}: ${first.message}${more}`, {
    details: { collection: first.collection, problems: problems.slice(0, MAX_LISTED_PROBLEMS), problemCount: problems.length },
  })
}
