import { checkpointKey, checkpointOf, fileRefOf, metaKey, parseJson, seqOf, snapshotKey, updateRange, type Checkpoint } from './doc-layout.js'
import { FILE_REF_FORMAT, unframe } from './framing.js'
import { corruption, readFailure, storageFailure } from './level-errors.js'
import type { BinaryLevel } from './level.js'
import type { SnapshotFiles } from './snapshot-files.js'

/**
 * The checkpoint of a stored collection if reads may come from its index rows (store/record-rows.ts)
 * without loading its document: its rows reflect its whole log, i.e. its checkpoint is the
 * log's last entry (or the log is empty: a compaction wrote the checkpoint with its snapshot).
 * False after a crash left acknowledged updates that were recovered into the log without rows,
 * or for a collection stored before rows were: loading it derives them (CollectionRegistry).
 *
 * What loading would have read is checked as far as it costs little, so damage is reported as
 * it was when every read loaded the document: DATA_CORRUPTION for damaged metadata, a damaged
 * snapshot value (a snapshot in LevelDB is under a megabyte, see SnapshotFiles), a snapshot
 * file that is missing or not at its size, or a damaged log entry. A file's CRC is checked when
 * the document loads (its size is checked here: reading it is what the rows save).
 */
export async function readableFromRows(db: BinaryLevel, files: SnapshotFiles | undefined, name: string): Promise<Checkpoint | undefined> {
  let meta: Uint8Array | undefined
  let snap: Uint8Array | undefined
  let cp: Uint8Array | undefined
  try {
    ;[meta, snap, cp] = await db.getMany([metaKey(name), snapshotKey(name), checkpointKey(name)])
  } catch (err) {
    throw readFailure(name, err)
  }
  const metaPayload = meta === undefined ? undefined : unframe(meta)
  if (metaPayload === undefined) return undefined // not stored (or damaged): loading it says which
  try {
    parseJson(metaPayload)
  } catch {
    return undefined
  }
  if (snap !== undefined && snap[0] === FILE_REF_FORMAT) {
    const ref = fileRefOf(snap)
    if (ref === undefined || files === undefined) throw corruption(name, 'damaged snapshot reference')
    let present: boolean
    try {
      present = await files.present(ref)
    } catch (err) {
      throw storageFailure(name, 'cannot read its snapshot file', err)
    }
    if (!present) throw corruption(name, `snapshot file ${ref.file} is missing or damaged`)
  } else if (snap !== undefined && unframe(snap) === undefined) throw corruption(name, 'damaged snapshot')
  const payload = cp === undefined ? undefined : unframe(cp)
  const checkpoint = payload === undefined ? undefined : checkpointOf(payload)
  if (checkpoint === undefined) return undefined
  let last: number | undefined
  try {
    for await (const [key, value] of db.iterator(updateRange(name))) {
      if (unframe(value) === undefined) throw corruption(name, `damaged update ${key.slice(updateRange(name).gte.length)}`)
      last = seqOf(name, key)
    }
  } catch (err) {
    if ((err as { code?: unknown }).code === 'DATA_CORRUPTION') throw err
    throw readFailure(name, err)
  }
  return last === undefined || last === checkpoint.seq ? checkpoint : undefined
}
