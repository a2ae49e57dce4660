import { checkpointKey, checkpointOf, metaKey, seqOf, updateKey, updateRange, type BatchOp } from './doc-layout.js'
import { frame, unframe } from './framing.js'
import type { BinaryLevel } from './level.js'
import type { WalEntry } from './wal-record.js'
import { checkpointOp } from './derived-count.js'

/**
 * What to write for the records of the write-ahead file that one collection left, when they
 * bring their rows (wal-record.ts): each update at the seq it was given, the rows, and the
 * checkpoint at the last update, so the collection's rows reflect its whole log again and reads
 * need not load its document (store/stored-check.ts). Undefined when that cannot be shown to
 * hold: the caller then stores the updates as before, their rows derived at the next load.
 *
 * It holds when the stored rows reflected the whole log (checkpoint at the log's last seq L);
 * every update of the file has a seq; the newest of those up to L is in the log with the same
 * bytes or was compacted into the snapshot (the older ones too, then); those after L follow it
 * without a gap; and the rows of the
 * last of them were taken (a record with rows at its seq), with a count, as were all rows
 * taken after L. Rows taken up to L are in the store already and left out.
 */
export async function recoveryWithRows(db: BinaryLevel, name: string, entries: readonly WalEntry[]): Promise<BatchOp[] | undefined> {
  if (entries.some((e) => e.seq === undefined)) return undefined
  for (let i = 1; i < entries.length; i++) if ((entries[i] as WalEntry).seq! < (entries[i - 1] as WalEntry).seq!) return undefined
  const [metaRaw, cpRaw] = await db.getMany([metaKey(name), checkpointKey(name)])
  const cpPayload = cpRaw === undefined ? undefined : unframe(cpRaw)
  const checkpoint = cpPayload === undefined ? undefined : checkpointOf(cpPayload)
  if (metaRaw === undefined || checkpoint === undefined) return undefined
  let last: number | undefined
  for await (const key of db.keys({ ...updateRange(name), reverse: true, limit: 1 })) last = seqOf(name, key)
  const stored = last ?? checkpoint.seq
  if (checkpoint.seq !== stored) return undefined
  const updates = entries.filter((e) => e.update.byteLength > 0)
  // The newest of those up to L is the log's, with the same bytes, or compacted (no longer in the
  // log): the file goes on from it. Only that one is read: the file may hold thousands LevelDB
  // has (see CollectionLog.append), and the first key of a log is found past the tombstones of
  // every compacted entry.
  const newestStored = updates.findLast((e) => e.seq! <= stored)
  if (newestStored !== undefined) {
    const found = await db.get(updateKey(name, newestStored.seq!))
    const payload = found === undefined ? undefined : unframe(found)
    if (found !== undefined && (payload === undefined || Buffer.compare(payload, newestStored.update) !== 0)) return undefined
  }
  const ops: BatchOp[] = []
  let seq = stored
  for (const e of updates) {
    if (e.seq! <= stored) continue
    if (e.seq !== seq + 1) return undefined
    seq = e.seq
    ops.push({ type: 'put', key: updateKey(name, seq), value: frame(e.update) })
  }
  if (seq === stored) return []
  let records: number | undefined
  let rowsAt = stored
  for (const e of entries) {
    if (e.seq! <= stored) continue
    if (e.rows === undefined) {
      // An update whose rows a later record takes; rows of one that this file does not hold are not to be trusted.
      if (e.update.byteLength === 0) return undefined
      continue
    }
    if (e.rows.records === undefined || e.seq! > seq) return undefined
    for (const op of e.rows.ops) ops.push(op)
    records = e.rows.records
    rowsAt = e.seq!
  }
  if (rowsAt !== seq || records === undefined) return undefined
  ops.push(checkpointOp(name, { seq, records, ...(checkpoint.rules === undefined ? {} : { rules: checkpoint.rules }) }))
  return ops
}
