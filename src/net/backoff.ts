/**
 * Time and chance as the mesh sees them. Injected (defaults: the real ones) so the backoff
 * scheduler and the peer book run in unit tests without the real world's clock and timers.
 */
export interface MeshClock {
  now(): number
  /** A number in [0, 1), as Math.random. */
  random(): number
  /** Run `fn` after `ms`; returns what cancels it. A real wait does not keep the process alive. */
  after(fn: () => void, ms: number): () => void
}

export const systemClock: MeshClock = {
  now: () => Date.now(),
  random: () => Math.random(),
  after(fn, ms) {
    const timer = setTimeout(fn, ms)
    timer.unref()
    return () => clearTimeout(timer)
  },
}

export const FIRST_BACKOFF_MS = 500
export const MAX_BACKOFF_MS = 30_000

/** Wait before the attempt-th retry of a dial or a session: doubling from 0.5 s up to MAX_BACKOFF_MS, jittered by ±25%. */
export function backoffMs(attempt: number, random: () => number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** attempt) * (0.75 + random() * 0.5)
}

export interface BackoffOptions {
  clock: Pick<MeshClock, 'random' | 'after'>
  /** False once the mesh stopped or was retired: nothing is scheduled, and a wait that ends runs nothing. */
  active: () => boolean
  /**
   * Whether a task that succeeds starts its key over from the shortest wait. True for dials (a
   * connection is the answer). False for sync sessions: a stream opens even to a peer that then
   * refuses it (it sends nothing and resets), so the owner calls `cancel` once the peer answered.
   */
  resetOnSuccess: boolean
}

interface Retry {
  attempt: number
  cancel?: () => void
  task?: () => Promise<unknown>
}

/**
 * Retries by key (an address, a peer id, a relay path): the attempt-th wait is backoffMs(attempt),
 * at most one wait per key at a time, a task that fails is scheduled again. The mesh has one for
 * redials and one for sync sessions on a connection that stays open.
 */
export class BackoffScheduler {
  private readonly retries = new Map<string, Retry>()
  private readonly clock: BackoffOptions['clock']
  private readonly active: () => boolean
  private readonly resetOnSuccess: boolean

  constructor(options: BackoffOptions) {
    this.clock = options.clock
    this.active = options.active
    this.resetOnSuccess = options.resetOnSuccess
  }

  /**
   * Run `task` after the key's next wait, unless a wait is already running (then that one runs
   * the task it was given; `runNow` takes the newest).
   */
  schedule(key: string, task: () => Promise<unknown>): void {
    if (!this.active()) return
    const state = this.retries.get(key) ?? { attempt: 0 }
    state.task = task
    if (state.cancel !== undefined) return
    const delay = backoffMs(state.attempt, this.clock.random)
    state.attempt++
    state.cancel = this.clock.after(() => {
      state.cancel = undefined
      if (!this.active()) return
      this.run(key, task)
    }, delay)
    this.retries.set(key, state)
  }

  /** Run `task` now: on failure it is scheduled with the key's next wait. */
  run(key: string, task: () => Promise<unknown>): void {
    task().then(
      () => {
        if (this.resetOnSuccess) this.retries.delete(key)
      },
      () => this.schedule(key, task),
    )
  }

  /** Run every waiting task now and start each key over from the shortest wait (sync now, reset). */
  runNow(): void {
    if (!this.active()) return
    for (const [key, state] of this.retries) {
      const task = state.task
      if (task === undefined) continue
      state.cancel?.()
      state.cancel = undefined
      state.attempt = 0
      this.run(key, task)
    }
  }

  /**
   * Start the key over from the shortest wait. A wait already running is left to run its task
   * once (if that fails, the key starts from the shortest wait).
   */
  forget(key: string): void {
    this.retries.delete(key)
  }

  /** Cancel the key's wait and start it over from the shortest wait (the peer answered, or is gone). */
  cancel(key: string): void {
    this.retries.get(key)?.cancel?.()
    this.retries.delete(key)
  }

  /** Cancel every wait and forget every key (the mesh stopped or was retired). */
  cancelAll(): void {
    for (const state of this.retries.values()) state.cancel?.()
    this.retries.clear()
  }

  /** How many waits the key has had since it last started over (0 if none is known). */
  attempts(key: string): number {
    return this.retries.get(key)?.attempt ?? 0
  }

  /** Whether a wait is running for the key. */
  waiting(key: string): boolean {
    return this.retries.get(key)?.cancel !== undefined
  }
}
