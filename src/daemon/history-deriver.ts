import { keepsHistory, type HistoryRetention } from '../core/history-types.js'
import { COLLECTIONS_COLLECTION } from '../core/kinds.js'
import { isFolderCollection } from '../core/membership.js'
import type { RecordChange, RecordCollection } from '../core/record-collection.js'
import { changedFields, type RecordVersion } from '../core/record-versions.js'
import type { BatchOp } from '../store/doc-layout.js'
import { versionOps, type StoredVersion } from '../store/history-rows.js'
import { LOCAL_ORIGIN } from './collection-registry.js'
import type { DerivedRows, RowCollector } from './derived-rows.js'

export interface HistoryDeriverOptions {
  /** The collection's retention now (synchronous: the settings cache, or the default). */
  retentionOf(name: string): HistoryRetention
  /** Records that got new entries (the pruner looks at them once the batch is written). */
  written?(name: string, keys: string[]): void
  /** Collections whose settings (`_collections` records, their retention among them) changed here or arrived. */
  settingsChanged?(names: string[]): void
}

/**
 * Derives the history rows of a transaction (see store/history-rows.ts): each version of a
 * record it brought, local write or merged update, becomes an entry, in the same batch as the
 * update itself, so the entries never drift from the data. Concurrent versions that arrive
 * together each get their own entry (versions are told apart by stamp).
 */
export class HistoryDeriver implements DerivedRows {
  constructor(private readonly options: HistoryDeriverOptions) {}

  /**
   * Shared folders' manifests keep history too: a file's versions (daemon/folder-history.ts).
   * `_collections` gets no rows, but its changes are watched: a new retention prunes at once.
   */
  internal(name: string): boolean {
    return keepsHistory(name) || name === COLLECTIONS_COLLECTION
  }

  derive(name: string, collection: RecordCollection, changes: readonly RecordChange[], origin: unknown): BatchOp[] {
    if (name === COLLECTIONS_COLLECTION) return this.settings(changes)
    const ops: BatchOp[] = []
    for (const e of this.entries(name, collection, changes, origin))
      for (const op of versionOps(name, e.key, e.version.stamp, storedVersion(e.version))) ops.push(op)
    return ops
  }

  /** For appends: each transaction's versions are read at once (a later one may replace their slots), their rows made with the batch. */
  collector(name: string, collection: RecordCollection): RowCollector {
    let noted: Entry[] = []
    return {
      add: (changes: readonly RecordChange[], origin: unknown): void => {
        if (name === COLLECTIONS_COLLECTION) return void this.settings(changes)
        for (const e of this.entries(name, collection, changes, origin)) noted.push(e)
      },
      take: (): BatchOp[] => {
        const ops: BatchOp[] = []
        for (const e of noted) for (const op of versionOps(name, e.key, e.version.stamp, storedVersion(e.version))) ops.push(op)
        noted = []
        return ops
      },
    }
  }

  /** Settings changed by a transaction (not a build of every row at load, nor a copy adopted whole: the hourly pass sees those). */
  private settings(changes: readonly RecordChange[]): BatchOp[] {
    const names = changes.filter((c) => c.stamps !== undefined).map((c) => c.key)
    if (names.length > 0) this.options.settingsChanged?.(names)
    return []
  }

  /** The versions `changes` bring, each with its record's key. */
  private entries(name: string, collection: RecordCollection, changes: readonly RecordChange[], origin: unknown): Entry[] {
    if (this.options.retentionOf(name).off) return []
    const out: Entry[] = []
    const keys: string[] = []
    for (const change of changes) {
      const before = out.length
      let versions = this.versionsOf(collection, change, origin)
      // A folder's manifest writes a capture field by field (size, hash...), each under its own
      // stamp: one version of the file, the last (the record as the write left it).
      if (versions.length > 1 && isFolderCollection(name)) versions = [versions.reduce((a, b) => (a.stamp > b.stamp ? a : b))]
      for (const version of versions) out.push({ key: change.key, version })
      if (out.length > before) keys.push(change.key)
    }
    if (keys.length > 0) this.options.written?.(name, keys)
    return out
  }

  private versionsOf(collection: RecordCollection, change: RecordChange, origin: unknown): RecordVersion[] {
    const { key, stamps } = change
    if (stamps === undefined) {
      // Not from a transaction this device watched (a peer's whole copy adopted, a build of
      // every row): the record's current version is its first entry.
      const current = currentVersion(collection, key)
      return current === undefined ? [] : [current]
    }
    if (stamps.length > 0) return change.versions?.() ?? []
    // A change that left no new slot only removed some: a set element removed (a removal
    // carries no stamp), or, from another device, slots its collapse dropped, which changes no
    // value. This device's own removal is stamped here; another's shows in the next version.
    if (origin !== LOCAL_ORIGIN) return []
    const value = change.value
    return [{ stamp: collection.clock.now(), writer: collection.clock.node, value, deleted: value === undefined, whole: true, fields: [] }]
  }
}

interface Entry {
  key: string
  version: RecordVersion
}

/** A record's version as it reads now, under its greatest stamp (undefined: no slot of it is left). */
export function currentVersion(collection: RecordCollection, key: string): RecordVersion | undefined {
  const stamp = collection.lastWrite(key)
  if (stamp === undefined) return undefined
  const value = collection.get(key)
  return { stamp, writer: stamp.slice(stamp.lastIndexOf('.') + 1), value, deleted: value === undefined, whole: true, fields: changedFields(undefined, value) }
}

function storedVersion(v: RecordVersion): StoredVersion {
  const out: StoredVersion = { device: v.writer, fields: v.fields, time: parseInt(v.stamp.slice(0, 9), 36) || 0 }
  if (v.deleted) out.d = 1
  else if (v.value !== undefined) out.v = v.value
  if (v.whole) out.w = 1
  return out
}
