/**
 * Reads of a batch's files started ahead of the loop that uses them, in its order: at most
 * `concurrency` at once (the disk and libuv's threads stay busy while the loop hashes and
 * captures), at most `window` ahead of the loop (a folder of 10,000 files is not held in memory
 * at once). A read that fails is thrown where its result is taken, never as an unhandled rejection.
 */
export const READ_AHEAD_CONCURRENCY = 16
export const READ_AHEAD_WINDOW = 64

type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown }

export function readAhead<T, R>(items: readonly T[], read: (item: T) => Promise<R>, options: { concurrency?: number; window?: number } = {}): () => Promise<R> {
  const concurrency = options.concurrency ?? READ_AHEAD_CONCURRENCY
  const window = Math.max(options.window ?? READ_AHEAD_WINDOW, concurrency)
  const results: (Promise<Settled<R>> | undefined)[] = []
  let started = 0
  let taken = 0
  let running = 0
  const pump = (): void => {
    // The item just taken always starts, whatever runs (the loop never waits on a read not started).
    while (started < items.length && ((running < concurrency && started < taken + window) || started < taken)) {
      const item = items[started] as T
      running++
      results[started++] = read(item).then(
        (value): Settled<R> => ({ ok: true, value }),
        (error: unknown): Settled<R> => ({ ok: false, error }),
      )
      void results[started - 1]?.then(() => {
        running--
        pump()
      })
    }
  }
  return async () => {
    if (taken >= items.length) throw new RangeError('readAhead: every item was taken')
    const i = taken++
    pump()
    const r = (await results[i]) as Settled<R>
    results[i] = undefined
    if (!r.ok) throw r.error
    return r.value
  }
}
