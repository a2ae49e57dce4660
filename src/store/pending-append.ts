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

/**
 * Appends queued for LevelDB beyond this make their writer wait until a batch takes them (see
 * waitFor). With a batch being written, up to about twice this many updates are in the
 * write-ahead file only: what an open after a crash stores before anything else.
 */
export const MAX_UNWRITTEN = 1_000
/** Records the write-ahead file may hold, LevelDB's included, before a writer waits for LevelDB to have all of them (see waitFor). */
export const MAX_IN_FILE = 2_500

/**
 * What the writer of an append waits for once its record is in the write-ahead file (durable),
 * given the appends queued with it and the records the file holds: nothing; `room`, until the
 * next batch takes the queue (a writer far ahead of LevelDB: it then writes on while LevelDB
 * writes that batch, so neither waits for the other, and a crash leaves at most about two
 * batches to store); or `written`, until LevelDB has its batch: the file is emptied only once
 * LevelDB has all of it, so a writer that never lets LevelDB catch up would grow it without end,
 * and an open after a crash reads all of it.
 */
export function waitFor(queued: number, inFile: number): 'none' | 'room' | 'written' {
  if (inFile > MAX_IN_FILE) return 'written'
  return queued > MAX_UNWRITTEN ? 'room' : 'none'
}

/** Writers waiting until a batch takes the appends queued (see waitFor). */
export class Room {
  private waiters: (() => void)[] = []

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  /** A batch took the queue (or the log failed: the appends are in the write-ahead file, the next one is refused). */
  open(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const go of waiters) go()
  }
}

export const noop = (): void => undefined
