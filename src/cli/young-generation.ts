/**
 * The V8 young generation of a kitsync CLI process (applied by bin/kitsync.js before the CLI's
 * modules load; the library never changes V8 settings of the process that imports it).
 *
 * V8 starts the young generation at 1 MiB per semi-space and doubles it, up to 16 MiB (Node 20,
 * 64-bit), whenever many objects survive a scavenge. Loading the ~740 ES modules of a peer
 * (libp2p, Yjs, ...) allocates some 45 MB in Node's module loader, much of it long enough lived
 * to survive, so every peer grew it to the maximum during start-up: 16-24 MiB of resident young
 * generation in a peer that then sits idle (V8's memory reducer gives it back only some 8-16 s
 * later, and it grows again at the next burst). Measured (scripts/bench/mesh.js, memory.idle3):
 * ~100 MB RSS with it, ~85 MB without.
 *
 * So the CLI keeps the young generation at its initial size: `--semi-space-growth-factor=1`.
 * Trade-off: objects that outlive two 1 MiB scavenges are promoted to the old generation
 * earlier, so more short-lived data is collected by major GCs. For kitsync's allocation
 * pattern (small Yjs updates, stream frames) this cost nothing measurable: the mesh benchmarks
 * (latency, bursts, 10 MiB catch-up, line of five) are unchanged within their noise with all
 * peers so configured, and a catch-up joiner peaked 10-30 MB lower.
 *
 * Why this flag and not `--max-semi-space-size`: that one is read only when the heap is set up,
 * i.e. on the command line, which `node bin/kitsync.js`, `npx kitsync` and the
 * `#!/usr/bin/env node` line cannot carry. The growth factor is read at every growth decision,
 * so `v8.setFlagsFromString` at the start of the process takes effect. Verified on Node 20
 * (V8 11.3); on a V8 that ignores it the process simply keeps V8's default sizing. Anyone who
 * sizes the young generation themselves (these flags in the node arguments or NODE_OPTIONS)
 * keeps their setting.
 */
export const YOUNG_GENERATION_FLAG = '--semi-space-growth-factor=1'

const USER_SIZED = /^--(?:(?:max|min)[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor)(?:=|$)/

/** The V8 flag to set, or undefined when the user sized the young generation already. */
export function youngGenerationFlag(execArgv: readonly string[], nodeOptions: string | undefined): string | undefined {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)]
  return given.some((arg) => USER_SIZED.test(arg)) ? undefined : YOUNG_GENERATION_FLAG
}
