import type { UnitRecordWrite, UnitUpdate } from '../core/unit-types.js'

/** Bytes of unit updates per commit of a folder's job (see commitParts). */
export const COMMIT_PART_BYTES = 2 * 1024 * 1024
/**
 * Captured units per commit of a folder's local job (FolderEngine.local): fewer than the open
 * documents kept (unit-doc-lru.ts), so a document is stored before the LRU can drop it.
 */
export const COMMIT_PART_UNITS = 128
/** Manifest records per commit of a folder's job. */
export const COMMIT_PART_RECORDS = 1000

export interface CommitPart {
  updates: UnitUpdate[]
  records: UnitRecordWrite[]
}

/**
 * A folder job's unit updates and manifest records, cut into commits of at most about
 * `maxBytes` of updates and `maxRecords` records, in order. Each file's record goes in one
 * batch with its unit's updates (its key is the unit's id), so a file is still stored whole or
 * not at all; files of one job are no longer stored all-or-nothing, which a job does not need
 * (the next scan captures what a crash left out).
 *
 * Why: the first scan of 10,000 files was one LevelDB batch of ~60 MB of updates, held three
 * times at once (the updates, LevelDB's write batch, its memtable): a peer stayed at 340-400 MB
 * RSS after it (scripts/experiments/folders/memory.mjs).
 */
export function commitParts(
  updates: readonly UnitUpdate[],
  records: readonly UnitRecordWrite[],
  maxBytes = COMMIT_PART_BYTES,
  maxRecords = COMMIT_PART_RECORDS,
): CommitPart[] {
  const byUnit = new Map<string, UnitUpdate[]>()
  for (const u of updates) {
    const list = byUnit.get(u.unit)
    if (list === undefined) byUnit.set(u.unit, [u])
    else list.push(u)
  }
  const parts: CommitPart[] = []
  let part: CommitPart = { updates: [], records: [] }
  let bytes = 0
  const close = (): void => {
    if (part.updates.length > 0 || part.records.length > 0) parts.push(part)
    part = { updates: [], records: [] }
    bytes = 0
  }
  for (const r of records) {
    const own = byUnit.get(r.key)
    byUnit.delete(r.key)
    const size = own?.reduce((n, u) => n + u.update.byteLength, 0) ?? 0
    if (part.records.length > 0 && (bytes + size > maxBytes || part.records.length >= maxRecords)) close()
    part.records.push(r)
    if (own !== undefined) part.updates.push(...own)
    bytes += size
  }
  // Updates of units without a record here.
  for (const own of byUnit.values()) {
    const size = own.reduce((n, u) => n + u.update.byteLength, 0)
    if (part.updates.length > 0 && bytes + size > maxBytes) close()
    part.updates.push(...own)
    bytes += size
  }
  close()
  return parts
}
