import type { BatchOp } from './doc-layout.js'
import type { RowSource } from './derived-count.js'
import type { WalRows } from './wal-record.js'
import type { WriteAheadFile } from './wal.js'

/**
 * What a CollectionLog keeps for its records of the write-ahead file (wal-record.ts): the seq
 * the next queued append takes (appends are written to LevelDB in the order they are queued),
 * and the rows derived eagerly for appends whose record did not take them.
 */
export class WalSequence {
  /** The seq the next queued append takes. */
  next: number
  private untaken: BatchOp[] = []

  constructor(lastSeq: number) {
    this.next = lastSeq + 1
  }

  /**
   * Write the record of an append (see CollectionLog.append) and give it the next seq: with the
   * rows so far (see take), or, `rowsLater`, without (the next record's hold them). Returns its
   * seq and the rows its batch writes. Throws (nothing given) if the file did not take it.
   */
  log(
    wal: WriteAheadFile,
    name: string,
    update: Uint8Array,
    derived: BatchOp[] | undefined,
    later: { rowsLater: boolean; source: RowSource | undefined; counted: boolean },
  ): { seq: number; ops: BatchOp[] | undefined } {
    const seq = this.next
    const rows = later.rowsLater ? undefined : this.take(later.source, derived, later.counted)
    wal.append(name, update, seq, rows)
    if (later.rowsLater && derived !== undefined) for (const op of derived) this.untaken.push(op)
    this.next++
    return { seq, ops: rows?.ops ?? derived }
  }

  /**
   * The rows of every append that no record took yet, with `derived`, for the next record:
   * taken from the row source now (the batch of that append writes them). `counted`: the
   * collection has a checkpoint (without one, a build of its rows under way, they are not the
   * whole of them: no count). Undefined without a row source.
   */
  private take(source: RowSource | undefined, derived: BatchOp[] | undefined, counted: boolean): WalRows | undefined {
    if (source === undefined) return undefined
    const taken = source.take()
    const ops = this.untaken
    this.untaken = []
    if (derived !== undefined) for (const op of derived) ops.push(op)
    for (const op of taken.ops) ops.push(op)
    return { records: counted ? taken.records : undefined, ops }
  }

  /**
   * The rows `source` gives a batch or a compaction (see RowSource). Those no record has (the
   * append that was to take them had none after it) go to the file first, as a record of rows
   * only reflecting every update queued so far, or a crash would leave the rows of acknowledged
   * updates nowhere while the next record's rows said they were current. (No record when every
   * queued seq is in LevelDB, `lastSeq`.)
   */
  batchRows(
    source: RowSource | undefined,
    wal: WriteAheadFile | undefined,
    name: string,
    counted: boolean,
    lastSeq: number,
  ): ReturnType<RowSource['take']> | undefined {
    const later = source?.take()
    if (later !== undefined && wal !== undefined && later.ops.length > 0 && this.next - 1 > lastSeq) {
      wal.append(name, new Uint8Array(0), this.next - 1, { records: counted ? later.records : undefined, ops: later.ops })
    }
    return later
  }
}
