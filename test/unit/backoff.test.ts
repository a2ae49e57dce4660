import { setImmediate } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { BackoffScheduler, backoffMs, MAX_BACKOFF_MS, type MeshClock } from '../../src/net/backoff.js'

/**
 * The mesh's backoff (redials and sync session retries) on an injected clock: waits are
 * recorded and run when the test moves time on, never by a real timer.
 */
class FakeClock implements Pick<MeshClock, 'random' | 'after'> {
  time = 0
  /** Every wait asked for, in order. */
  readonly waits: { ms: number; at: number; fn: () => void; cancelled: boolean; ran: boolean }[] = []
  constructor(public chance = 0.5) {}

  random = (): number => this.chance

  after(fn: () => void, ms: number): () => void {
    const wait = { ms, at: this.time + ms, fn, cancelled: false, ran: false }
    this.waits.push(wait)
    return () => void (wait.cancelled = true)
  }

  /** Waits still to end. */
  pending(): number {
    return this.waits.filter((w) => !w.cancelled && !w.ran).length
  }

  /** Move time on by `ms`, running each wait that ends meanwhile (and what its task settles). */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms
    for (;;) {
      const next = this.waits.filter((w) => !w.cancelled && !w.ran && w.at <= end).sort((a, b) => a.at - b.at)[0]
      if (next === undefined) break
      this.time = next.at
      next.ran = true
      next.fn()
      await settle()
    }
    this.time = end
  }
}

/** Let a task's promise settle and the scheduler react to it. */
async function settle(): Promise<void> {
  await setImmediate()
}

function scheduler(clock: FakeClock, resetOnSuccess: boolean, active = () => true): BackoffScheduler {
  return new BackoffScheduler({ clock, active, resetOnSuccess })
}

/** A task that fails until `ok` is set, counting its runs. */
function task(): { run: () => Promise<void>; runs: () => number; ok: (v: boolean) => void } {
  let runs = 0
  let ok = false
  return {
    run: async () => {
      runs++
      if (!ok) throw new Error('unreachable')
    },
    runs: () => runs,
    ok: (v) => void (ok = v),
  }
}

describe('backoff delays', () => {
  it('double from 0.5 s and stop at 30 s, jittered by ±25% from the injected random', () => {
    const mid = (): number => 0.5
    expect([0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffMs(n, mid))).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
    expect(backoffMs(0, () => 0)).toBe(375)
    expect(backoffMs(3, () => 0.25)).toBe(3500)
    expect(backoffMs(10, () => 0)).toBe(0.75 * MAX_BACKOFF_MS)
    expect(backoffMs(10, () => 0.999)).toBeCloseTo(1.2495 * MAX_BACKOFF_MS, 6)
    for (const chance of [0, 0.1, 0.5, 0.9, 0.999999]) {
      const wait = backoffMs(1, () => chance)
      expect(wait).toBeGreaterThanOrEqual(750)
      expect(wait).toBeLessThan(1250)
    }
  })
})

describe('backoff scheduler', () => {
  it('retries a failing task with growing waits up to the cap', async () => {
    const clock = new FakeClock()
    const backoff = scheduler(clock, true)
    const t = task()
    backoff.schedule('a', t.run)
    await clock.advance(200_000)
    expect(clock.waits.map((w) => w.ms).slice(0, 9)).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
    // Each wait ran the task once; the one still running has not yet.
    expect(t.runs()).toBe(clock.waits.length - 1)
    expect(clock.pending()).toBe(1)
  })

  it('jitters each wait with the injected random', async () => {
    const clock = new FakeClock(0)
    const backoff = scheduler(clock, true)
    const t = task()
    backoff.schedule('a', t.run)
    clock.chance = 0.75
    await clock.advance(375 + 1125)
    expect(clock.waits.map((w) => w.ms)).toEqual([375, 1000 * 1.125, 2000 * 1.125])
    expect(t.runs()).toBe(2)
  })

  it('keeps one wait per key, and the keys apart', async () => {
    const clock = new FakeClock()
    const backoff = scheduler(clock, true)
    const a = task()
    const b = task()
    backoff.schedule('a', a.run)
    backoff.schedule('a', a.run)
    backoff.schedule('b', b.run)
    expect(clock.waits.map((w) => w.ms)).toEqual([500, 500])
    await clock.advance(500)
    expect([a.runs(), b.runs()]).toEqual([1, 1])
    expect(backoff.attempts('a')).toBe(2)
  })

  it('starts a redial over from the shortest wait once it succeeded', async () => {
    const clock = new FakeClock()
    const backoff = scheduler(clock, true)
    const t = task()
    backoff.schedule('a', t.run)
    await clock.advance(500 + 1000)
    expect(backoff.attempts('a')).toBe(3)
    t.ok(true)
    await clock.advance(2000)
    expect(t.runs()).toBe(3)
    expect(backoff.attempts('a')).toBe(0)
    expect(clock.pending()).toBe(0)
    t.ok(false)
    backoff.schedule('a', t.run)
    expect(clock.waits.at(-1)?.ms).toBe(500)
  })

  it('keeps a session retry growing after a stream opened, until the peer answered (cancel)', async () => {
    const clock = new FakeClock()
    const backoff = scheduler(clock, false)
    const t = task()
    backoff.schedule('peer', t.run)
    await clock.advance(500)
    t.ok(true)
    await clock.advance(1000)
    // Opened, then refused without a word: the next wait is the third, not the first.
    expect(t.runs()).toBe(2)
    expect(clock.pending()).toBe(0)
    backoff.schedule('peer', t.run)
    expect(clock.waits.at(-1)?.ms).toBe(2000)
    // The peer answered: the wait is called off, and the next starts from 0.5 s.
    backoff.cancel('peer')
    expect(clock.pending()).toBe(0)
    backoff.schedule('peer', t.run)
    expect(clock.waits.at(-1)?.ms).toBe(500)
  })

  it('runs nothing after cancel or cancelAll', async () => {
    const clock = new FakeClock()
    const backoff = scheduler(clock, true)
    const a = task()
    const b = task()
    backoff.schedule('a', a.run)
    backoff.schedule('b', b.run)
    backoff.cancel('a')
    await clock.advance(500)
    expect([a.runs(), b.runs()]).toEqual([0, 1])
    backoff.cancelAll()
    await clock.advance(60_000)
    expect(b.runs()).toBe(1)
    expect(backoff.attempts('b')).toBe(0)
  })

  it('schedules nothing, and runs no wait that ends, while inactive (stopped or retired)', async () => {
    const clock = new FakeClock()
    let active = true
    const backoff = scheduler(clock, true, () => active)
    const t = task()
    backoff.schedule('a', t.run)
    active = false
    await clock.advance(500)
    expect(t.runs()).toBe(0)
    backoff.schedule('b', t.run)
    backoff.runNow()
    expect(clock.waits).toHaveLength(1)
    expect(t.runs()).toBe(0)
  })

  it('runs every waiting task now from the shortest wait again (redial now)', async () => {
    const clock = new FakeClock()
    const backoff = scheduler(clock, true)
    const t = task()
    backoff.schedule('a', t.run)
    await clock.advance(500 + 1000 + 2000)
    expect(backoff.attempts('a')).toBe(4)
    const newest = task()
    backoff.schedule('a', newest.run)
    backoff.runNow()
    await settle()
    // The newest task ran at once, the running wait was called off, and the next wait is 0.5 s.
    expect(newest.runs()).toBe(1)
    expect(clock.waits.filter((w) => w.cancelled)).toHaveLength(1)
    expect(clock.waits.at(-1)?.ms).toBe(500)
    expect(clock.pending()).toBe(1)
  })

  it('forget starts the key over but lets a running wait run its task once', async () => {
    const clock = new FakeClock()
    const backoff = scheduler(clock, true)
    const t = task()
    backoff.schedule('a', t.run)
    await clock.advance(500)
    backoff.forget('a')
    expect(backoff.attempts('a')).toBe(0)
    await clock.advance(1000)
    expect(t.runs()).toBe(2)
    // The run that failed scheduled the key anew, from the shortest wait.
    expect(clock.waits.at(-1)?.ms).toBe(500)
  })
})
