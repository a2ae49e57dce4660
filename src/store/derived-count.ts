import { checkpointKey, jsonValue, rowPrefix, type BatchOp, type Checkpoint } from './doc-layout.js'
import { readFailure } from './level-errors.js'
import type { BinaryLevel } from './level.js'

/**
 * How many records a batch of derived ops adds to a collection (negative: removes): for each
 * index row `r!NAME!KEY` it writes, whether the row is there after the batch (its last op is a
 * put) against whether it is stored now. Counted against what is stored, not against what the
 * document held before, so ops written twice (a compaction writes the rows of the updates it
 * holds, their appends write them again) count once; and no record has to be looked up in
 * the document, whose layout is not the store's business. `exists`: false for a collection
 * nothing is stored of yet, which has no rows to read.
 */
export async function countRows(store: { readonly db: BinaryLevel }, name: string, ops: BatchOp[], exists: boolean): Promise<number> {
  const prefix = rowPrefix(name)
  const after = new Map<string, boolean>()
  for (const op of ops) if (op.key.startsWith(prefix)) after.set(op.key, op.type === 'put')
  if (after.size === 0) return 0
  const keys = [...after.keys()]
  let before: (Uint8Array | undefined)[]
  if (!exists) before = []
  else {
    try {
      before = await store.db.getMany(keys)
    } catch (err) {
      throw readFailure(name, err)
    }
  }
  let delta = 0
  keys.forEach((key, i) => {
    delta += (after.get(key) === true ? 1 : 0) - (before[i] === undefined ? 0 : 1)
  })
  return delta
}

/**
 * Rows derived from appends that are made only when their batch is put together (see
 * CollectionLog.rowsFrom): the rows of every transaction since the last `take`, each record's
 * index row once however often the batch wrote it, and the records the collection holds now
 * (the count kept in memory, so no row has to be read back). Called synchronously, outside any
 * transaction: the document then holds exactly the updates appended so far.
 */
export interface RowSource {
  take(): { ops: BatchOp[]; records: number }
}

/**
 * The rows derived from a batch of appends (see CollectionLog.append) and the checkpoint at
 * `seq` with the record count after them: if the collection has one (`records` known), or is
 * new and this batch has rows. A stored collection without one (a build of its rows under
 * way, see CollectionLog.writeRows) gets none: the build's last batch writes it. `later`: the
 * rows taken from the log's RowSource for this batch, with the count they leave.
 */
export async function checkpointed(
  store: { readonly db: BinaryLevel },
  name: string,
  batch: readonly { derived?: BatchOp[] }[],
  at: { seq: number; records: number | undefined; rules: string | undefined; exists: boolean },
  later?: { ops: BatchOp[]; records: number },
): Promise<{ ops: BatchOp[]; records: number | undefined }> {
  const ops: BatchOp[] = []
  let derived = at.records !== undefined
  for (const p of batch) {
    if (p.derived === undefined) continue
    derived ||= !at.exists
    for (const op of p.derived) ops.push(op)
  }
  if (later !== undefined) for (const op of later.ops) ops.push(op)
  if (!derived) return { ops, records: undefined }
  const records = later !== undefined ? later.records : (at.records ?? 0) + (await countRows(store, name, ops, at.exists))
  ops.push(checkpointOp(name, { seq: at.seq, records, ...(at.rules === undefined ? {} : { rules: at.rules }) }))
  return { ops, records }
}

/** The op that writes a collection's checkpoint, or removes it. */
export function checkpointOp(name: string, checkpoint: Checkpoint | undefined): BatchOp {
  const key = checkpointKey(name)
  return checkpoint === undefined ? { type: 'del', key } : { type: 'put', key, value: jsonValue(checkpoint) }
}

/** Rows per LevelDB batch of `rowBatches`. */
export const ROWS_PER_BATCH = 10_000

/**
 * The batches that write `ops` (rows) with the checkpoint: one, or for many rows (an adopted
 * copy) slices of ROWS_PER_BATCH, since one LevelDB batch of 100,000 rows leaves ~100 MB in the
 * C heap. The first slice removes the checkpoint and the last writes it: a crash in between has
 * the rows built anew at the next open.
 */
export function rowBatches(name: string, ops: BatchOp[], checkpoint: Checkpoint | undefined): BatchOp[][] {
  const cp = checkpointOp(name, checkpoint)
  if (ops.length <= ROWS_PER_BATCH) return [[...ops, cp]]
  const out: BatchOp[][] = []
  for (let i = 0; i < ops.length; i += ROWS_PER_BATCH) out.push(ops.slice(i, i + ROWS_PER_BATCH))
  out[0]?.unshift(checkpointOp(name, undefined))
  out[out.length - 1]?.push(cp)
  return out
}
