import { setFlagsFromString } from 'node:v8'

/**
 * The V8 young generation of a kitsync CLI process (applied by bin/kitsync.js before the CLI's
 * modules load; the library never changes V8 settings of the process that imports it).
 *
 * V8 starts the young generation at 1 MiB per semi-space and doubles it, up to 16 MiB (Node 20,
 * 64-bit), whenever much survives a scavenge. Loading the ~700 ES modules of a peer (libp2p,
 * Yjs, ...) makes Node's module loader allocate some 35 MB (URLs, sources, module records), long
 * enough lived to survive, so every peer grew it to the maximum during start-up and then sat
 * idle with 16-24 MiB of it resident: V8's memory reducer gives it back only 8-16 s later, and
 * it grows again at the next burst. memory.idle3 (scripts/bench/mesh.js): ~100 MB -> ~85 MB.
 *
 * So the CLI keeps the young generation at its initial size: `--semi-space-growth-factor=1`.
 * Trade-off: objects that outlive two 1 MiB scavenges are promoted to the old generation
 * sooner, so major GCs collect more of the short-lived data. Measured with the benchmark peers
 * (scripts/bench/mesh-peer.js sets the same flag since 2026-12-04; before, they ran with V8's
 * default sizing, unlike `kitsync peer start`):
 * - small updates one at a time: scavenges take 0.2-0.4 ms instead of ~1 ms, more often; no
 *   clear difference in latency (p99 ratio to y-websocket 0.82-0.86 in 4 runs, 0.79-0.86 in 3).
 * - 10,000 separate transactions at once (burst.unawaited): 217-263 ms against 190-210 ms; with
 *   the compact record index (2af7fbf) 214-221 ms against 172-185 ms (3 pairs each); with the
 *   queued writes made smaller (measured at 849a0cb), 173-232 ms against 147-160 ms. The writes
 *   waiting in the queue, and the 10,000 new records, outlive 1 MiB scavenges and are promoted.
 * - a catch-up joiner peaks at 175-226 MB RSS instead of 231-242 MB.
 * Letting V8 grow it again once the peer has started (growth factor back to 2) gave bursts of
 * 197-207 ms but a p99 ratio of 0.91-0.98 and a line of five of 829-857 ms instead of 626-683 (2
 * runs), so the setting stays for the life of the process.
 *
 * Why this flag and not `--max-semi-space-size`: V8 reads that one only when it sets up the
 * heap, i.e. from the command line, which `node bin/kitsync.js`, `npx kitsync` and the
 * `#!/usr/bin/env node` line cannot carry. The growth factor is read at every growth decision,
 * so `v8.setFlagsFromString` at the start of the process takes effect. Verified on Node 20
 * (V8 11.3). The flag still exists in V8 13, whose flag definitions declare 2 as its minimum:
 * there it may have no effect (V8's default sizing, nothing else changes); check memory.idle3
 * when moving to a newer Node. Whoever sizes the young generation themselves (a semi-space flag
 * in the node arguments or NODE_OPTIONS) keeps their setting.
 */
export const YOUNG_GENERATION_FLAG = '--semi-space-growth-factor=1'

const USER_SIZED = /^--(?:(?:max|min)[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor)(?:=|$)/

/** The V8 flag to set, or undefined when the user sized the young generation already. */
export function youngGenerationFlag(execArgv: readonly string[], nodeOptions: string | undefined): string | undefined {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)]
  return given.some((arg) => USER_SIZED.test(arg)) ? undefined : YOUNG_GENERATION_FLAG
}

/** Set the flag in this process unless its user sized the young generation (bin/kitsync.js; the benchmark's peers). */
export function applyYoungGeneration(): void {
  const flag = youngGenerationFlag(process.execArgv, process.env.NODE_OPTIONS)
  if (flag !== undefined) setFlagsFromString(flag)
}
