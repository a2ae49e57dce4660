/**
 * When to fold a collection's update log into a new snapshot. Pure: the store feeds it
 * the sizes and the clock. Triggered by bytes (amortised: the log may grow as large as the
 * snapshot it would replace, so each byte is rewritten a bounded number of times) and by
 * age (so an idle collection does not keep a log around to replay on every open).
 */
export interface CompactionPolicy {
  /** Compact once the log holds more than max(minBytes, snapshotBytes * ratio) bytes. */
  minBytes: number
  ratio: number
  /** Compact a non-empty log whose oldest entry is older than this. */
  maxAgeMs: number
}

export const DEFAULT_COMPACTION: CompactionPolicy = {
  minBytes: 256 * 1024,
  ratio: 1,
  maxAgeMs: 60_000,
}

export interface LogState {
  snapshotBytes: number
  logBytes: number
  logEntries: number
  /** Clock time the oldest entry still in the log was written (or first seen on load). */
  oldestEntryAt: number | undefined
}

export function shouldCompact(policy: CompactionPolicy, state: LogState, now: number): boolean {
  if (state.logEntries === 0) return false
  if (state.logBytes > Math.max(policy.minBytes, state.snapshotBytes * policy.ratio)) return true
  return state.oldestEntryAt !== undefined && now - state.oldestEntryAt >= policy.maxAgeMs
}
