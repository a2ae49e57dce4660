import { UNIT_MS, type DurationUnit } from './durations.js'
import { KitsyncError } from './errors.js'
import type { JsonValue } from './json.js'
import { isFolderCollection, isInternalCollection } from './membership.js'

/**
 * History of records: what the API returns, the retention setting a collection keeps in
 * `_collections`, and the time arguments (`--since 2h`, `--at 2026-12-01`). The entries
 * themselves are derived and stored by daemon/history-deriver.ts and store/history-rows.ts.
 */

/** How long a collection keeps the old versions of its records (synced in `_collections`, so every device prunes alike). */
export interface HistoryRetention {
  /** Off: no versions are kept (and those kept so far are dropped). */
  off: boolean
  /** Keep at most this many versions of each record (the newest). */
  count: number
  /** Drop versions older than this many days (the newest version of a record always stays). */
  days: number
}

/** What `_collections` stores: `off`, or either limit (the other keeps its default). */
export type HistorySetting = 'off' | { count?: number; days?: number }

export const DEFAULT_HISTORY: HistoryRetention = { off: false, count: 100, days: 90 }

export const DAY_MS = UNIT_MS.d

/** Collections whose records get history rows: app collections, and shared folders' manifests (`_folder.NAME`: file history). */
export function keepsHistory(name: string): boolean {
  return !isInternalCollection(name) || isFolderCollection(name)
}

/** One version of a record, as `history` lists it. */
export interface HistoryEntry {
  collection: string
  key: string
  /** The version's id: the stamp of its write (pass it to `restore --version`). */
  stamp: string
  /** Milliseconds since the epoch, from the stamp (the writer's clock). */
  time: number
  /** The writer's device name (its short id when this device does not know the name). */
  device: string
  /** The writer's device tag (the stamp's node part). */
  deviceTag: string
  deleted: boolean
  /** The record after this write (absent for a delete). */
  value?: JsonValue
  /** Top-level fields this version changed. */
  fields: string[]
}

export interface HistoryOptions {
  /** At most this many versions (newest first). */
  limit?: number
  /** Only versions at or after this time: milliseconds since the epoch, an ISO date, or a duration back from now (`30m`, `2h`, `3d`, `1w`). */
  since?: number | string
}

/** Which version `restore` writes again: its id (stamp), or the one current at a time. */
export interface RestoreTarget {
  version?: string
  at?: number | string
}

export interface RestoreResult {
  collection: string
  key: string
  /** The version written again. */
  restored: HistoryEntry
  /** The stamp of the new write. */
  stamp: string
}

/** The retention a collection's setting means (malformed parts fall back to the defaults). */
export function effectiveRetention(setting: unknown): HistoryRetention {
  if (setting === 'off') return { ...DEFAULT_HISTORY, off: true }
  const out = { ...DEFAULT_HISTORY }
  if (typeof setting !== 'object' || setting === null) return out
  const s = setting as Record<string, unknown>
  if (isPositiveInt(s.count)) out.count = s.count
  if (isPositiveInt(s.days)) out.days = s.days
  return out
}

/** A stored setting as written (undefined: not a valid one). */
export function historySettingOf(value: unknown): HistorySetting | undefined {
  if (value === 'off') return 'off'
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const s = value as Record<string, unknown>
  const out: { count?: number; days?: number } = {}
  if (isPositiveInt(s.count)) out.count = s.count
  if (isPositiveInt(s.days)) out.days = s.days
  return out
}

/**
 * The CLI's `--history` argument: `off`, `default`, a version count (`50`), a number of days
 * (`30d`), or both (`50,30d`). `default` is returned as null (the setting is removed).
 */
export function parseHistorySetting(text: string): HistorySetting | null {
  const t = text.trim().toLowerCase()
  if (t === 'off') return 'off'
  if (t === 'default') return null
  const out: { count?: number; days?: number } = {}
  for (const part of t.split(',')) {
    const m = /^(\d+)(d?)$/.exec(part.trim())
    const n = m === null ? NaN : Number(m[1])
    if (m === null || !isPositiveInt(n)) {
      throw new KitsyncError('INVALID_ARGUMENT', `--history takes off, default, a version count (50), days (30d) or both (50,30d), not ${JSON.stringify(text)}`)
    }
    if (m[2] === 'd') out.days = n
    else out.count = n
  }
  return out
}

export function formatRetention(r: HistoryRetention): string {
  return r.off ? 'off' : `last ${r.count} versions, ${r.days} days`
}

/**
 * A point in time: milliseconds since the epoch, an ISO date (`2026-12-01`, `2026-12-01T10:00Z`),
 * or a duration back from `now` (`90s`, `30m`, `2h`, `3d`, `1w`).
 */
export function parseTime(value: number | string, now: number, what = 'time'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value
  } else {
    const m = /^(\d+)\s*([smhdw])$/.exec(value.trim())
    if (m !== null) return now - Number(m[1]) * UNIT_MS[m[2] as DurationUnit]
    if (/^\d{4}-\d{2}-\d{2}/.test(value.trim())) {
      const t = Date.parse(value.trim())
      if (Number.isFinite(t)) return t
    }
  }
  throw new KitsyncError(
    'INVALID_ARGUMENT',
    `${what} must be an ISO date (2026-12-01T10:00Z) or a duration back from now (30m, 2h, 3d, 1w), not ${JSON.stringify(value)}`,
  )
}

export function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1
}

/** The params of a control API `history` or `restore` request, checked (INVALID_ARGUMENT otherwise). */
export function historyParams(p: Record<string, unknown>): { collection: string; key?: string; options: HistoryOptions; target: RestoreTarget } {
  const str = (name: string, required: boolean): string | undefined => {
    const v = p[name]
    if (v === undefined && !required) return undefined
    if (typeof v !== 'string') throw new KitsyncError('INVALID_ARGUMENT', `${name} must be a string`)
    return v
  }
  const time = (name: string): number | string | undefined => {
    const v = p[name]
    if (v !== undefined && typeof v !== 'string' && typeof v !== 'number')
      throw new KitsyncError('INVALID_ARGUMENT', `${name} must be a time (a number or a string)`)
    return v
  }
  if (p.limit !== undefined && !isPositiveInt(p.limit)) throw new KitsyncError('INVALID_ARGUMENT', 'limit must be a whole number of at least 1')
  const key = str('key', false)
  const since = time('since')
  const at = time('at')
  const version = str('version', false)
  return {
    collection: str('collection', true) as string,
    ...(key === undefined ? {} : { key }),
    options: { ...(p.limit === undefined ? {} : { limit: p.limit as number }), ...(since === undefined ? {} : { since }) },
    target: { ...(version === undefined ? {} : { version }), ...(at === undefined ? {} : { at }) },
  }
}
