import { setFlagsFromString } from 'node:v8'

/**
 * How far V8 lets the old generation of a kitsync CLI process grow past what was live at its
 * last full collection (applied by bin/kitsync.js before the CLI's modules load, next to the
 * young generation's setting, see young-generation.ts; the library never changes V8 settings).
 *
 * V8 sets the next limit to the live size times a factor of 1.1 to 4, 4 for any heap that may
 * grow past 1 GB (every Node default): a peer with 20-40 MB live may hold 80-160 MB of old
 * generation, mostly garbage, before it collects. With a small young generation (1 MiB
 * semi-spaces) much short-lived data is promoted, so a busy peer reached that limit: the VPS
 * with 20 devices writing held 114 MB of old space for 37 MB live (scripts/bench/vps.js,
 * vps.rss.20: 292 MB RSS in that run). `--heap-growing-percent=50` makes the factor 1.5. An idle peer
 * starts at 80 MB RSS instead of 87 (its first full collection comes at a lower limit).
 * Trade-off: more full collections under load (each marks the live data, 20-40 MB here,
 * concurrently for the most part). V8 reads the flag at each collection, so setting it at run
 * time takes effect (Node 20, V8 11.3); whoever passes it to node themselves keeps theirs.
 */
export const OLD_GENERATION_FLAG = '--heap-growing-percent=50'

const USER_SET = /^--heap[-_]growing[-_]percent(?:=|$)/

/** The V8 flag to set, or undefined when the user set the growing factor already. */
export function oldGenerationFlag(execArgv: readonly string[]): string | undefined {
  return execArgv.some((arg) => USER_SET.test(arg)) ? undefined : OLD_GENERATION_FLAG
}

/** Set the flag in this process unless its user set it (bin/kitsync.js; the benchmark's peers). */
export function applyOldGeneration(): void {
  const flag = oldGenerationFlag(process.execArgv)
  if (flag !== undefined) setFlagsFromString(flag)
}
