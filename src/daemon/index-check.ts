import { toKitsyncError } from '../core/errors.js'
import { jsonEqual } from '../core/json.js'
import type { IndexCheckReport } from '../core/workspace-types.js'
import type { BinaryLevel } from '../store/level.js'
import { readRows, rowOf, type RecordRow } from '../store/record-rows.js'
import { rowKey } from '../store/doc-layout.js'
import type { DocStore } from '../store/doc-store.js'
import type { CollectionRegistry, LoadedCollection } from './collection-registry.js'

/** Keys a report lists at most (the rest are counted). */
const MAX_LISTED = 100

/**
 * Compare a loaded collection's records with its stored index rows (`kitsync check`): every
 * record must have a row with its value and greatest stamp, no row may be left without a
 * record, and the checkpoint must count the records. The log is flushed first; a key that
 * differs is read again after another flush, so a write landing meanwhile (a running peer) is
 * not reported.
 */
export async function checkIndex(entry: LoadedCollection, store: DocStore): Promise<IndexCheckReport> {
  const { collection, log } = entry
  const name = collection.name
  await log.flush()
  // A row (undefined: damaged) against the record; `present`: a row is stored.
  const differs = (key: string, present: boolean, row: RecordRow | undefined): boolean => {
    const v = collection.get(key)
    if (!present) return v !== undefined
    return row === undefined || v === undefined || !jsonEqual(row.v, v) || row.t !== (collection.lastWrite(key) ?? '')
  }
  const suspects = new Set<string>()
  const seen = new Set<string>()
  for (const [key, row] of await readRows(store.db, name, false)) {
    seen.add(key)
    if (differs(key, true, row)) suspects.add(key)
  }
  for (const key of collection.keys()) if (!seen.has(key)) suspects.add(key)
  const differing: string[] = []
  if (suspects.size > 0) {
    await log.flush()
    const keys = [...suspects]
    const stored = await rows(store.db, name, keys)
    keys.forEach((key, i) => {
      const raw = stored[i]
      if (differs(key, raw !== undefined, raw === undefined ? undefined : rowOf(raw))) differing.push(key)
    })
  }
  const checkpoint = await store.checkpoint(name)
  const checkpointWrong = checkpoint === undefined || checkpoint.records !== collection.size || checkpoint.seq !== log.checkpoint()?.seq
  return {
    collection: name,
    records: collection.size,
    differing: differing.sort().slice(0, MAX_LISTED),
    ...(differing.length > MAX_LISTED ? { more: differing.length - MAX_LISTED } : {}),
    ...(checkpointWrong ? { checkpointWrong: true as const } : {}),
  }
}

async function rows(db: BinaryLevel, name: string, keys: string[]): Promise<(Uint8Array | undefined)[]> {
  return db.getMany(keys.map((key) => rowKey(name, key)))
}

/**
 * `check` of the named collections, each loaded: a collection with differences reports them;
 * with `repair`, its rows are rebuilt from its records (never the other way round) and it is
 * checked again. A collection that cannot be loaded reports why.
 */
export async function checkCollections(registry: CollectionRegistry, store: DocStore, names: string[], repair: boolean): Promise<IndexCheckReport[]> {
  const out: IndexCheckReport[] = []
  for (const name of names) {
    try {
      const entry = await registry.existing(name)
      let report = await checkIndex(entry, store)
      if (repair && (report.differing.length > 0 || report.checkpointWrong === true)) {
        await registry.rebuildRows(name)
        report = { ...(await checkIndex(entry, store)), repaired: true }
      }
      out.push(report)
    } catch (err) {
      const e = toKitsyncError(err)
      out.push({ collection: name, records: 0, differing: [], error: { code: e.code, message: e.message } })
    }
  }
  return out
}
