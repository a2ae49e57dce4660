import { debugLog } from '../core/debug-log.js'
import { KitsyncError } from '../core/errors.js'
import {
  effectiveRetention,
  isPositiveInt,
  keepsHistory,
  parseTime,
  type HistoryEntry,
  type HistoryOptions,
  type HistoryRetention,
  type RestoreResult,
  type RestoreTarget,
} from '../core/history-types.js'
import { hlcTime, nodeTagOf } from '../core/hlc.js'
import type { JsonValue } from '../core/json.js'
import { COLLECTIONS_COLLECTION, toCollectionSettings } from '../core/kinds.js'
import { isFolderCollection } from '../core/membership.js'
import { assertCollectionName, assertRecordKey } from '../core/names.js'
import { changedFields } from '../core/record-versions.js'
import type { DeviceRecord } from '../core/workspace-types.js'
import { pruneBlobs } from '../store/blob-gc.js'
import type { BatchOp } from '../store/doc-layout.js'
import { pruneCollection, pruneRecordsOps, readCollectionChanges, readRecordHistory, type VersionRow } from '../store/history-rows.js'
import type { BinaryLevel } from '../store/level.js'
import type { CollectionRegistry } from './collection-registry.js'
import { currentVersion, HistoryDeriver } from './history-deriver.js'

const log = debugLog('daemon:history')

/** How long after a write the records it touched are pruned (writes in between share the pass). */
const PRUNE_DELAY_MS = 1000
/** Records pruned between two yields to the event loop (one LevelDB iterator each slice). */
const PRUNE_SLICE = 256
/**
 * Past this many records written in a collection since its last prune (an import, a joiner's
 * copy), the next pass walks the collection's entries in one range instead of a range per record.
 */
const MAX_DIRTY = 10_000
/** The day limit is applied to every record (ones nobody writes any more) this often, and unused blobs are deleted. */
const FULL_PASS_MS = 3_600_000
/** The first full pass after start (a peer restarted within the hour would otherwise never run one). */
const FIRST_FULL_PASS_MS = 5 * 60_000
/** `history --collection` lists at most this many changes unless told otherwise. */
export const DEFAULT_CHANGES_LIMIT = 1000

export interface WorkspaceHistoryOptions {
  /** The store; with its blobs (`units`), each full pass also deletes those no folder manifest names (store/blob-gc.ts). */
  store: { readonly db: BinaryLevel; batch(ops: BatchOp[]): Promise<void>; readonly units?: { dropBlobs(hashes: readonly string[]): Promise<string[]> } }
  /** The workspace's collections (a function: the registry is built with this class's deriver). */
  registry: () => Pick<CollectionRegistry, 'existing' | 'readyEntry' | 'names'>
  devices(): Promise<DeviceRecord[]>
  /** Writes through the workspace (its rules, queue and durability). */
  write: {
    set(collection: string, key: string, value: JsonValue): Promise<void>
    delete(collection: string, key: string): Promise<boolean>
  }
  /** Wall clock (tests inject one to prune by days). */
  now?: () => number
}

/**
 * The history of the records of a workspace (docs/RECORDS.md, "History"): derives the entries
 * (HistoryDeriver, in the batches of the collections' updates), lists them, restores an old
 * version as a new write, and prunes them by each collection's retention in `_collections`.
 * Entries are local to this device: they do not sync yet.
 */
export class WorkspaceHistory {
  readonly deriver: HistoryDeriver
  private readonly options: WorkspaceHistoryOptions
  private readonly now: () => number
  /** Records written since the last prune, by collection ('all': too many to keep, see MAX_DIRTY). */
  private readonly dirty = new Map<string, Set<string> | 'all'>()
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private lastFullPass: number
  private closed = false

  constructor(options: WorkspaceHistoryOptions) {
    this.options = options
    this.now = options.now ?? Date.now
    this.lastFullPass = this.now() - FULL_PASS_MS + FIRST_FULL_PASS_MS
    this.deriver = new HistoryDeriver({
      retentionOf: (name) => this.retentionOf(name),
      written: (name, keys) => this.written(name, keys),
      settingsChanged: (names) => this.settingsChanged(names),
    })
  }

  /** A collection's retention, read synchronously from `_collections` when it is loaded (else the default). */
  retentionOf(name: string): HistoryRetention {
    const settings = this.options.registry().readyEntry(COLLECTIONS_COLLECTION)?.collection.get(name)
    return effectiveRetention(toCollectionSettings(name, settings).history)
  }

  /** A record's versions newest first, or (without a key) a collection's changes. */
  async history(collection: string, key: string | undefined, options: HistoryOptions = {}): Promise<HistoryEntry[]> {
    assertCollectionName(collection)
    if (key !== undefined) assertRecordKey(key)
    if (options.limit !== undefined && !isPositiveInt(options.limit)) throw new KitsyncError('INVALID_ARGUMENT', 'limit must be a whole number of at least 1')
    const sinceMs = options.since === undefined ? undefined : parseTime(options.since, this.now(), 'since')
    const entry = await this.options.registry().existing(collection)
    // The rows go to LevelDB with the updates, which the log writes a little behind the write-ahead file.
    await entry.log.flush()
    const names = await this.deviceNames()
    if (key === undefined) {
      const rows = await readCollectionChanges(this.options.store.db, collection, sinceMs ?? 0, options.limit ?? DEFAULT_CHANGES_LIMIT)
      return rows.map((r) => view(collection, r, names))
    }
    const { versions, older } = await readRecordHistory(this.options.store.db, collection, key, {
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      ...(sinceMs === undefined ? {} : { sinceMs }),
    })
    if (versions.length === 0 && older === undefined) {
      // No entry (history off, or written before it was kept): the current version, if any.
      const v = entry.collection.has(key) ? currentVersion(entry.collection, key) : undefined
      if (v === undefined) throw new KitsyncError('NOT_FOUND', `no record ${JSON.stringify(key)} in ${collection}`, { details: { collection, key } })
      const row: VersionRow = {
        key,
        stamp: v.stamp,
        device: v.writer,
        fields: v.fields,
        time: hlcTime(v.stamp),
        ...(v.value === undefined ? {} : { v: v.value }),
      }
      return [view(collection, row, names)]
    }
    // A whole write's fields: what differs from the version before it, when that one is at hand.
    const rows = versions.map((r, i) => {
      const prev = versions[i + 1] ?? older
      return r.w === 1 && prev !== undefined ? { ...r, fields: changedFields(prev.d === 1 ? undefined : prev.v, r.d === 1 ? undefined : r.v) } : r
    })
    return rows.map((r) => view(collection, r, names))
  }

  /** Write an old version again, as a new whole write (or a delete) that syncs like any write. */
  async restore(collection: string, key: string, target: RestoreTarget): Promise<RestoreResult> {
    assertCollectionName(collection)
    assertRecordKey(key)
    if ((target.version === undefined) === (target.at === undefined))
      throw new KitsyncError('INVALID_ARGUMENT', 'restore needs either a version or a time (at)')
    const entry = await this.options.registry().existing(collection)
    await entry.log.flush()
    let chosen: VersionRow | undefined
    if (target.version !== undefined) {
      const { versions } = await readRecordHistory(this.options.store.db, collection, key)
      chosen = versions.find((v) => v.stamp === target.version)
      if (chosen === undefined)
        throw new KitsyncError('NOT_FOUND', `no version ${target.version} of ${JSON.stringify(key)} in ${collection}`, {
          details: { collection, key, version: target.version },
        })
    } else {
      const at = parseTime(target.at as number | string, this.now(), 'at')
      const { versions } = await readRecordHistory(this.options.store.db, collection, key)
      // The version that was current at that time: the newest written at or before it.
      chosen = versions.find((v) => v.time <= at)
      if (chosen === undefined)
        throw new KitsyncError('NOT_FOUND', `no version of ${JSON.stringify(key)} in ${collection} at or before ${new Date(at).toISOString()}`, {
          details: { collection, key },
        })
    }
    if (chosen.d === 1 || chosen.v === undefined) await this.options.write.delete(collection, key)
    else await this.options.write.set(collection, key, chosen.v)
    const names = await this.deviceNames()
    return { collection, key, restored: view(collection, chosen, names), stamp: entry.collection.lastWrite(key) ?? '' }
  }

  /** Prune what is due now: the records written since the last pass, and hourly every record (the day limit). */
  pruneNow(full = true): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const previous = this.running ?? Promise.resolve()
    const run = previous.then(() => this.prune(full))
    // Settles either way: the caller hears of a failure through `run`.
    const settled: Promise<void> = run.then(
      () => undefined,
      () => undefined,
    )
    this.running = settled
    void settled.then(() => {
      if (this.running === settled) this.running = undefined
    })
    return run
  }

  /** The workspace's periodic tick: a full pass once an hour. */
  tick(): void {
    if (this.now() - this.lastFullPass < FULL_PASS_MS) return
    void this.pruneNow(true).catch((err: unknown) => log('history prune failed; it runs again at the next tick', err))
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    await this.running?.catch(() => undefined) // a failed pass was logged; the next start prunes again
  }

  private written(name: string, keys: string[]): void {
    let set = this.dirty.get(name)
    if (set === undefined) this.dirty.set(name, (set = new Set()))
    if (set !== 'all') for (const k of keys) set.add(k)
    if (set !== 'all' && set.size > MAX_DIRTY) this.dirty.set(name, 'all')
    this.schedule()
  }

  /** A collection's settings changed (here or from a peer): its whole history is pruned by the new retention in the next pass. */
  private settingsChanged(names: string[]): void {
    for (const name of names) if (keepsHistory(name)) this.dirty.set(name, 'all')
    if (names.some(keepsHistory)) this.schedule()
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.pruneNow(false).catch((err: unknown) => log('history prune failed; it runs again after the next write', err))
    }, PRUNE_DELAY_MS)
    this.timer.unref()
  }

  private async prune(full: boolean): Promise<void> {
    const now = this.now()
    const dirty = [...this.dirty]
    this.dirty.clear()
    for (const [name, keys] of dirty) {
      const retention = this.retentionOf(name)
      if (keys === 'all') {
        if (!full) await this.pruneCollection(name, retention, now)
        continue
      }
      const all = [...keys]
      for (let i = 0; i < all.length; i += PRUNE_SLICE) {
        if (this.closed) return
        if (i > 0) await new Promise((resolve) => setImmediate(resolve))
        const ops = await pruneRecordsOps(this.options.store.db, name, all.slice(i, i + PRUNE_SLICE), retention, now)
        if (ops.length > 0) await this.options.store.batch(ops)
      }
    }
    if (!full) return
    this.lastFullPass = now
    const names = this.options.registry().names()
    for (const name of names) {
      if (this.closed) return
      if (keepsHistory(name)) await this.pruneCollection(name, this.retentionOf(name), now)
    }
    const units = this.options.store.units
    if (units === undefined || this.closed) return
    const manifests = names.filter(isFolderCollection)
    const blobs = await pruneBlobs(this.options.store.db, manifests, units)
    if (blobs === undefined) log('blobs not collected: a folder manifest is rebuilding its rows; the next full pass tries again')
    else if (blobs.dropped > 0) log(`deleted ${blobs.dropped} blobs no folder names any more (${blobs.kept} kept)`)
  }

  /** Walk every entry of a collection, deleting what its retention drops, yielding between slices. */
  private async pruneCollection(name: string, retention: HistoryRetention, now: number): Promise<void> {
    await pruneCollection(this.options.store.db, name, retention, now, async (ops) => {
      await this.options.store.batch(ops)
      await new Promise((resolve) => setImmediate(resolve))
    })
  }

  private async deviceNames(): Promise<Map<string, string>> {
    const names = new Map<string, string>()
    const devices = await this.options.devices().catch((err: unknown) => {
      log('device names unavailable; history shows device tags', err)
      return []
    })
    for (const d of devices) names.set(nodeTagOf(d.peerId), d.name)
    return names
  }
}

function view(collection: string, r: VersionRow, names: Map<string, string>): HistoryEntry {
  const deleted = r.d === 1
  return {
    collection,
    key: r.key,
    stamp: r.stamp,
    time: r.time,
    device: r.device === '' ? 'unknown' : (names.get(r.device) ?? r.device),
    deviceTag: r.device,
    deleted,
    ...(deleted || r.v === undefined ? {} : { value: r.v }),
    fields: r.fields,
  }
}
