import { describe, expect, it } from 'vitest'
import { TypedEmitter } from '../../src/core/emitter.js'
import { formatHlc, Hlc, MAX_DRIFT_MS } from '../../src/core/hlc.js'

describe('hybrid logical clock', () => {
  const now = 1_700_000_000_000

  it('moves past the greatest of many stamps, and makes a newer one', () => {
    const clock = new Hlc('me', () => now)
    const stamps = [5, 90, 17].map((counter) => formatHlc({ ms: now + 1000, counter, node: 'other' }))
    clock.observeAll(stamps)
    const next = clock.now()
    expect(next > formatHlc({ ms: now + 1000, counter: 90, node: 'zzz' })).toBe(true)
    expect(next.startsWith(formatHlc({ ms: now + 1000, counter: 91, node: 'me' }).slice(0, 14))).toBe(true)
  })

  it('is not held back by a greatest stamp it ignores: the valid ones still count', () => {
    for (const ignored of ['zzzzzzzzz.zzzz.', formatHlc({ ms: now + MAX_DRIFT_MS + 60_000, counter: 0, node: 'broken' })]) {
      const clock = new Hlc('me', () => now)
      clock.observeAll([formatHlc({ ms: now + 5000, counter: 3, node: 'a' }), ignored, formatHlc({ ms: now + 2000, counter: 0, node: 'b' })])
      expect(clock.now().slice(0, 14)).toBe(formatHlc({ ms: now + 5000, counter: 4, node: 'me' }).slice(0, 14))
    }
  })
})

describe('typed emitter', () => {
  it('calls the listeners an event had when it was emitted, each once however often subscribed', () => {
    const emitter = new TypedEmitter<{ e: number }>()
    const calls: string[] = []
    const late = (n: number): void => void calls.push(`late${n}`)
    const b = (n: number): void => void calls.push(`b${n}`)
    const a = (n: number): void => {
      calls.push(`a${n}`)
      if (n === 1) {
        offB()
        emitter.on('e', late)
      }
    }
    emitter.on('e', a)
    emitter.on('e', a)
    const offB = emitter.on('e', b)
    expect(emitter.listenerCount('e')).toBe(2)
    emitter.emit('e', 1)
    emitter.emit('e', 2)
    // b was removed and `late` added during event 1: both take effect from event 2.
    expect(calls).toEqual(['a1', 'b1', 'a2', 'late2'])
    emitter.off('e', a)
    emitter.emit('e', 3)
    expect(calls.slice(4)).toEqual(['late3'])
  })
})
