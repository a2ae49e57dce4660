/**
 * Caller cancellation of the long operations (sync now, fetch, join, dials), the way
 * js-libp2p does it: an optional `signal` in the options. An aborted operation rejects with
 * ABORTED; one that was given no signal behaves as before.
 */

import { KitsyncError } from './errors.js'

/** The error an aborted operation rejects with; the signal's reason is kept as the cause. */
export function abortedError(what: string, signal?: AbortSignal): KitsyncError {
  return new KitsyncError('ABORTED', `${what} was aborted`, signal?.reason === undefined ? {} : { cause: signal.reason })
}

/** Throw ABORTED if the signal already aborted (before anything is done). */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw abortedError(what, signal)
}

/**
 * The promise's outcome, or ABORTED as soon as the signal aborts (at once if it already has).
 * The work behind the promise is not stopped by this: pass the signal down to stop it too.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) {
    promise.catch(() => undefined) // rejected with ABORTED instead; its own outcome no longer matters
    return Promise.reject(abortedError(what, signal))
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortedError(what, signal))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}

/** A signal that aborts when any of the given ones does (undefined ones are left out). */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const given = signals.filter((s): s is AbortSignal => s !== undefined)
  if (given.length <= 1) return given[0]
  return AbortSignal.any(given)
}
