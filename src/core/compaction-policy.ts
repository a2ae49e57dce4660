/**
 * When to fold a collection's update log into a new snapshot. Pure: the store feeds it
 * the sizes and the clock. Triggered by bytes (amortised: the log may grow as large as the
 * snapshot it would replace, so each byte is rewritten a bounded number of times) and by
 * age (so an idle collection does not keep a log around to replay on every open). A due
 * compaction waits for a pause in writing, up to a hard bound on the log's size.
 */
export interface CompactionPolicy {
  /** Compact once the log holds more than max(minBytes, snapshotBytes * ratio) bytes. */
  minBytes: number
  ratio: number
  /** Compact a non-empty log whose oldest entry is older than this. */
  maxAgeMs: number
  /**
   * A compaction that is due waits until nothing was appended for this long, so a burst of
   * writes is not held up by re-encoding the whole collection in its middle...
   */
  idleMs: number
  /** ...unless the log holds more than this many times the size that made it due. */
  urgentFactor: number
}

export const DEFAULT_COMPACTION: CompactionPolicy = {
  minBytes: 256 * 1024,
  ratio: 1,
  maxAgeMs: 60_000,
  idleMs: 100,
  urgentFactor: 4,
}

/** Whether a compaction is due, and whether it must run at once or when writing pauses. */
export type CompactionDue = 'now' | 'when-idle' | undefined

export function compactionDue(policy: CompactionPolicy, state: LogState, now: number): CompactionDue {
  if (state.logEntries === 0) return undefined
  const trigger = Math.max(policy.minBytes, state.snapshotBytes * policy.ratio)
  if (state.logBytes > trigger * policy.urgentFactor) return 'now'
  if (state.logBytes > trigger) return 'when-idle'
  return state.oldestEntryAt !== undefined && now - state.oldestEntryAt >= policy.maxAgeMs ? 'when-idle' : undefined
}

export interface LogState {
  snapshotBytes: number
  logBytes: number
  logEntries: number
  /** Clock time the oldest entry still in the log was written (or first seen on load). */
  oldestEntryAt: number | undefined
}

/** Whether a compaction is due at all (at once or when writing pauses). */
export function shouldCompact(policy: CompactionPolicy, state: LogState, now: number): boolean {
  return compactionDue(policy, state, now) !== undefined
}
