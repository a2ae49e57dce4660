import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setMemoryRelease } from '../daemon/memory-release.js'

/**
 * A kitsync CLI process runs a full garbage collection as soon as its peer dropped a large
 * idle document (daemon/memory-release.ts), instead of holding the garbage until V8's memory
 * reducer gets to it 8-20 s later. Applied by bin/kitsync.js (and the benchmark's peers, which
 * run with the settings of `kitsync peer start`); the library never does this by itself.
 *
 * `gc` is not exposed to a process started without `--expose-gc`; the flag, set at run time,
 * gives it to contexts created afterwards, hence the new context (as Jest's `--logHeapUsage`
 * does). One collection at a 200 MB heap with 20 MB live took 20-40 ms here, once per drop.
 */
export function enableMemoryRelease(): void {
  const own = (globalThis as { gc?: unknown }).gc
  let gc = typeof own === 'function' ? (own as () => void) : undefined
  if (gc === undefined) setFlagsFromString('--expose-gc')
  // The context is made at the first release (a context costs memory; most processes never need one).
  setMemoryRelease(() => {
    gc ??= runInNewContext('gc') as () => void
    gc()
  })
}
