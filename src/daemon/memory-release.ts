/**
 * What this process does once kitsync dropped a large part of its memory (an idle collection's
 * document, see idle-docs.ts). V8 reclaims such garbage only at its next full collection, which
 * an idle process reaches some 8-20 s later (its memory reducer): until then the process stays
 * at its peak RSS. 100,000 records: 640 MB RSS 3 s and 10 s after the last write, 400 MB after
 * 20 s. The library sets nothing here (it never changes the V8 settings of the process that
 * imports it); the kitsync CLI collects at once (cli/gc-release.ts).
 */
let release: (() => void) | undefined

/** Set (or clear) what releaseMemory does. */
export function setMemoryRelease(fn: (() => void) | undefined): void {
  release = fn
}

/** A large part of the heap became garbage: collect it now if this process said how. */
export function releaseMemory(): void {
  release?.()
}
