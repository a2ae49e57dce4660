import { describe, expect, it } from 'vitest'
import { abortable, abortedError, anySignal, throwIfAborted } from '../../src/core/abort.js'
import { isKitsyncError } from '../../src/core/errors.js'
import { dialSignal, LIBP2P_DIAL_TIMEOUT_MS } from '../../src/net/dial-signal.js'

/** The helpers behind the `signal` option of the long operations (sync now, fetch, join, dials). */
describe('abort helpers', () => {
  it('an aborted signal is ABORTED (exit 6), naming the operation and keeping the reason as cause', () => {
    const reason = new Error('user gave up')
    const err = abortedError('sync now', AbortSignal.abort(reason))
    expect(isKitsyncError(err, 'ABORTED')).toBe(true)
    expect(err.message).toBe('sync now was aborted')
    expect(err.cause).toBe(reason)
    expect(() => throwIfAborted(AbortSignal.abort(), 'join')).toThrow('join was aborted')
    expect(() => throwIfAborted(new AbortController().signal, 'join')).not.toThrow()
    expect(() => throwIfAborted(undefined, 'join')).not.toThrow()
  })

  it('abortable rejects with ABORTED at once when the signal already aborted, and when it aborts while waiting', async () => {
    const never = new Promise<number>(() => undefined)
    await expect(abortable(never, AbortSignal.abort(), 'fetch')).rejects.toMatchObject({ code: 'ABORTED', message: 'fetch was aborted' })
    const controller = new AbortController()
    const waiting = abortable(never, controller.signal, 'fetch')
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' })
  })

  it('abortable passes the outcome through when nothing aborts, or when there is no signal', async () => {
    const controller = new AbortController()
    await expect(abortable(Promise.resolve(7), controller.signal, 'x')).resolves.toBe(7)
    await expect(abortable(Promise.reject(new Error('own failure')), controller.signal, 'x')).rejects.toThrow('own failure')
    const p = Promise.resolve(8)
    expect(abortable(p, undefined, 'x')).toBe(p)
  })

  it('anySignal aborts with the first of its signals; undefined ones are left out', () => {
    expect(anySignal(undefined, undefined)).toBeUndefined()
    const one = new AbortController().signal
    expect(anySignal(undefined, one)).toBe(one)
    const a = new AbortController()
    const b = new AbortController()
    const both = anySignal(a.signal, undefined, b.signal)
    expect(both?.aborted).toBe(false)
    b.abort('b')
    expect(both?.aborted).toBe(true)
    expect(both?.reason).toBe('b')
  })

  it('a dial keeps libp2p’s own timeout when the caller gives a signal, and gets no signal when it gives none', () => {
    expect(LIBP2P_DIAL_TIMEOUT_MS).toBe(10_000)
    expect(dialSignal(undefined)).toBeUndefined()
    const caller = new AbortController()
    const signal = dialSignal(caller.signal)
    expect(signal).toBeDefined()
    expect(signal).not.toBe(caller.signal) // bounded by the timeout as well
    caller.abort()
    expect(signal?.aborted).toBe(true)
  })
})
