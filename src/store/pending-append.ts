import type { BatchOp } from './doc-layout.js'
import type { SnapshotFileWrite } from './snapshot-files.js'

/** An update queued in a CollectionLog for its next LevelDB batch (group commit). */
export interface PendingAppend {
  update: Uint8Array
  /** The seq it takes in the collection's log, given as it is queued (the write-ahead file records it). */
  seq: number
  /** It is in the write-ahead file too (settled there once LevelDB has it). */
  logged: boolean
  /** A copy being adopted (see CollectionLog.adopt): whether its owner kept it. */
  kept?: Promise<boolean>
  /** Its snapshot file, already being written (see CollectionLog.adopt). */
  file?: SnapshotFileWrite
  /** Rows derived from it (see append), written in the same batch. */
  derived?: BatchOp[]
  extra?: BatchOp[] // other ops of its batch (see carried)
  resolve: () => void
  reject: (err: unknown) => void
}
