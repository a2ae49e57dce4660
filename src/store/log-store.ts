import type { CompactionPolicy } from '../core/compaction-policy.js'
import type { BatchOp, StoredSnapshot } from './doc-layout.js'
import type { BinaryLevel } from './level.js'
import type { SnapshotFiles, SnapshotFileWrite } from './snapshot-files.js'
import type { WriteAheadFile } from './wal.js'

/** What a CollectionLog needs from the store it writes to (DocStore). */
export interface LogStore {
  /** Asked to drop compacted entries from its files at once, where it can (see writeCompaction). */
  readonly db: BinaryLevel
  readonly policy: CompactionPolicy
  readonly now: () => number
  readonly wal: WriteAheadFile | undefined
  readonly files: SnapshotFiles | undefined
  /** Every write goes through here (see DocStore.batch). */
  batch(ops: BatchOp[], options?: { sync?: boolean }): Promise<void>
  /** How to store `update` as the snapshot of `name`: framed, or (large) written to a file first. */
  snapshotValue(name: string, update: Uint8Array): Promise<StoredSnapshot>
  /** Start writing `update` as a snapshot file; resolves once the write is under way. */
  beginFile(name: string, update: Uint8Array): Promise<SnapshotFileWrite>
  /** What is stored for `name` now: the snapshot, then the log. */
  readStored(name: string): Promise<Uint8Array[]>
  /** A failed log of `name` leaves `count` acknowledged appends only in the write-ahead file. */
  strand(name: string, count: number): void
}
