import { KitsyncError } from '../core/errors.js'
import { DAY_MS, keepsHistory, type HistoryRetention } from '../core/history-types.js'
import { MAX_DRIFT_MS, parseHlc } from '../core/hlc.js'
import { assertRecordKey } from '../core/names.js'
import type { HistoryItem } from '../protocol/history-frames.js'
import type { HistorySyncHost } from '../sync/history-host.js'
import type { BatchOp } from '../store/doc-layout.js'
import { unframe } from '../store/framing.js'
import { collectionHistoryRange, historyKey, pruneRecordOps, versionOps, type StoredVersion } from '../store/history-rows.js'
import type { BinaryLevel } from '../store/level.js'

/**
 * The history entries of a workspace as the sync engine reconciles them (sync/history-host.ts):
 * items read from `h!NAME!` keys, entries sent as their JSON, and a peer's entries checked field
 * by field, then stored (with their `c!` row, in one batch) only when new to this device and
 * within the collection's retention. The count limit applies after arrival, as to derived ones.
 */

export interface HistorySyncStoreOptions {
  store: { readonly db: BinaryLevel; batch(ops: BatchOp[]): Promise<void> }
  /** A collection's retention now (WorkspaceHistory.retentionOf). */
  retentionOf(name: string): HistoryRetention
  /** This device's id: of two devices, the one with the smaller id opens the reconciliation. */
  deviceId: string
  /** Largest value a record may hold (bytes of JSON); a larger entry is refused. */
  maxEntryBytes?: number
  now?: () => number
}

const HOUR_MS = 3_600_000
const SEP = '\u0000'
const ENTRY_FIELDS = new Set(['v', 'd', 'device', 'fields', 'time', 'w'])
const MAX_FIELDS = 1000
const READ_SLICE = 1000
const decoder = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()

export class HistorySyncStore implements HistorySyncHost {
  private readonly now: () => number
  private readonly maxEntryBytes: number

  constructor(private readonly options: HistorySyncStoreOptions) {
    this.now = options.now ?? Date.now
    this.maxEntryBytes = options.maxEntryBytes ?? 16 * 1024 * 1024
  }

  since(collection: string): number | undefined {
    if (!keepsHistory(collection)) return undefined
    const retention = this.options.retentionOf(collection)
    if (retention.off) return undefined
    return Math.max(0, Math.floor((this.now() - retention.days * DAY_MS) / HOUR_MS) * HOUR_MS)
  }

  initiates(peerId: string): boolean {
    return this.options.deviceId < peerId
  }

  async items(collection: string, since: number): Promise<string[]> {
    const out: string[] = []
    const start = `h!${collection}!`.length
    const it = this.options.store.db.keys(collectionHistoryRange(collection))
    try {
      // In slices: an async step per key costs about 3 µs more than the key itself.
      for (let slice = await it.nextv(READ_SLICE); slice.length > 0; slice = await it.nextv(READ_SLICE)) {
        for (const k of slice) {
          const id = k.slice(start)
          // The stamp's first 9 characters are its time (core/hlc.ts); entries were checked when written.
          const sep = id.lastIndexOf(SEP)
          if (sep > 0 && parseInt(id.slice(sep + 1, sep + 10), 36) >= since) out.push(id)
        }
      }
    } finally {
      await it.close()
    }
    return out
  }

  async entries(collection: string, ids: readonly string[]): Promise<HistoryItem[]> {
    if (ids.length === 0) return []
    const values = await this.options.store.db.getMany(ids.map((id) => historyKeyOf(collection, id)))
    const out: HistoryItem[] = []
    ids.forEach((id, i) => {
      const value = values[i]
      const entry = value === undefined ? undefined : unframe(value)
      if (entry !== undefined) out.push({ id, entry })
    })
    return out
  }

  async store(collection: string, items: readonly HistoryItem[], from: string): Promise<number> {
    const checked = items.map((item) => ({ ...checkEntry(collection, item, from, this.now(), this.maxEntryBytes), id: item.id }))
    const retention = this.options.retentionOf(collection)
    if (retention.off) return 0
    // Exactly the retention's days here (the exchange's window is rounded down to the hour).
    const cutoff = this.now() - retention.days * DAY_MS
    const fresh = checked.filter((c) => c.version.time >= cutoff)
    if (fresh.length === 0) return 0
    const db = this.options.store.db
    const existing = await db.getMany(fresh.map((c) => historyKeyOf(collection, c.id)))
    const ops: BatchOp[] = []
    const keys = new Set<string>()
    const seen = new Set<string>()
    fresh.forEach((c, i) => {
      if (existing[i] !== undefined || seen.has(c.id)) return // never overwritten
      seen.add(c.id)
      ops.push(...versionOps(collection, c.key, c.stamp, c.version))
      keys.add(c.key)
    })
    if (ops.length === 0) return 0
    await this.options.store.batch(ops)
    // The count limit, now that the record's entries are together.
    const prune: BatchOp[] = []
    for (const key of keys) prune.push(...(await pruneRecordOps(db, collection, key, retention, this.now())))
    if (prune.length > 0) await this.options.store.batch(prune)
    return seen.size
  }
}

function historyKeyOf(collection: string, id: string): string {
  const i = id.lastIndexOf(SEP)
  return historyKey(collection, id.slice(0, i), id.slice(i + 1))
}

/** A peer's entry, checked: its item names a valid key and stamp, and the entry is what a deriver writes for it. */
export function checkEntry(
  collection: string,
  item: HistoryItem,
  from: string,
  now: number,
  maxBytes: number,
): { key: string; stamp: string; version: StoredVersion } {
  const refuse = (why: string): never => {
    throw new KitsyncError('PROTOCOL_ERROR', `invalid history entry from ${from} for ${collection}/${JSON.stringify(item.id.slice(0, 80))}: ${why}`, {
      details: { collection, from },
    })
  }
  const i = item.id.lastIndexOf(SEP)
  const key = item.id.slice(0, i)
  const stamp = item.id.slice(i + 1)
  const parts = parseHlc(stamp)
  if (i <= 0 || parts === undefined) refuse('not KEY\\0STAMP')
  try {
    assertRecordKey(key)
  } catch (err) {
    refuse((err as Error).message)
  }
  const { ms, node } = parts as NonNullable<typeof parts>
  if (ms > now + MAX_DRIFT_MS) refuse('stamped in the future')
  if (item.entry.byteLength > maxBytes) refuse(`${item.entry.byteLength} bytes, over ${maxBytes}`)
  let v: unknown
  try {
    v = JSON.parse(decoder.decode(item.entry))
  } catch {
    refuse('not JSON')
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return refuse('not an object')
  const e = v as Record<string, unknown>
  for (const k of Object.keys(e)) if (!ENTRY_FIELDS.has(k)) refuse(`unknown field ${JSON.stringify(k)}`)
  if (e.device !== node) refuse("device is not the stamp's writer")
  if (e.time !== ms) refuse("time is not the stamp's")
  if (!Array.isArray(e.fields) || e.fields.length > MAX_FIELDS || !e.fields.every((f) => typeof f === 'string' && f.length > 0 && f.length <= 1024))
    refuse('fields must be a list of field names')
  if (e.d !== undefined && e.d !== 1) refuse('d must be 1')
  if (e.w !== undefined && e.w !== 1) refuse('w must be 1')
  if (e.d === 1 && e.v !== undefined) refuse('a delete holds no value')
  // Canonical: the fields in the order the deriver writes them.
  const version: StoredVersion = { device: node, fields: e.fields as string[], time: ms }
  if (e.v !== undefined) version.v = e.v as StoredVersion['v']
  if (e.d === 1) version.d = 1
  if (e.w === 1) version.w = 1
  if (encoder.encode(JSON.stringify(version)).byteLength > maxBytes) refuse('too large')
  return { key, stamp, version }
}
