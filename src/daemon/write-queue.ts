/**
 * The local writes of a workspace, applied strictly in the order they were called, and
 * group-committed: the writes to one collection that are waiting together (an app that calls
 * `set` ten thousand times without awaiting) run in one Yjs transaction, which makes one
 * update, one write-ahead record and one frame to each peer instead of one per write. Each
 * write is still checked on its own, against the records as the writes before it left them,
 * and fails on its own.
 *
 * Between two groups the queue yields to the event loop, so a long import does not hold back
 * the network: the sync engine sends the first group while the next is written.
 */

/** How the queue reaches a collection; `C` is whatever a write needs (the loaded collection, its rules). */
export interface WriteTarget<C> {
  /** The collection if it is loaded and its settings known, else undefined. */
  ready(collection: string): C | undefined
  /** Load it (and its settings); rejects for a collection that must exist and does not. */
  load(collection: string, mustExist: boolean): Promise<C>
  /** Run `body` as one transaction of the collection; returns the promise of its durability. */
  commit(target: C, body: () => void): Promise<void>
}

/**
 * What a write does, given the collection and the two arguments it was queued with. Passing
 * them, rather than a closure that holds them, lets a method share one function among all its
 * writes: a closure and its context per write were a third of what a queued write kept alive.
 */
export type WriteOp<C, A, B, T> = (target: C, a: A, b: B) => T

interface QueuedWrite<C> {
  collection: string
  mustExist: boolean
  op: WriteOp<C, unknown, unknown, unknown>
  a: unknown
  b: unknown
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

/** Placeholder resolvers of a write, until its promise's executor has run (synchronously, in push). */
const settleLater = (): void => undefined
let capturing: QueuedWrite<unknown> | undefined
/**
 * The executor of every write's promise: one shared function, which hands the resolvers to the
 * write being queued, instead of a new closure per write (what Promise.withResolvers does, which
 * Node 20 lacks). A queued write lives until its group has run: ten thousand un-awaited sets
 * keep ten thousand of them.
 */
function captureResolvers(resolve: (value: never) => void, reject: (err: unknown) => void): void {
  const write = capturing as QueuedWrite<unknown>
  capturing = undefined
  write.resolve = resolve as (value: unknown) => void
  write.reject = reject
}

/** Writes in one transaction at most: bounds the time the event loop is held. */
export const MAX_GROUP = 1000

export class WriteQueue<C> {
  private queue: QueuedWrite<C>[] = []
  private head = 0
  private draining = false
  private idleWaiters: (() => void)[] = []

  constructor(
    private readonly target: WriteTarget<C>,
    private readonly yieldTurn: () => Promise<void> = () => new Promise((resolve) => setImmediate(resolve)),
  ) {}

  /** Queue a write; resolves with what `op(target, a, b)` returned once its transaction is durable. */
  push<T, A = undefined, B = undefined>(collection: string, mustExist: boolean, op: WriteOp<C, A, B, T>, a?: A, b?: B): Promise<T> {
    const write: QueuedWrite<C> = { collection, mustExist, op: op as WriteOp<C, unknown, unknown, unknown>, a, b, resolve: settleLater, reject: settleLater }
    capturing = write as QueuedWrite<unknown>
    const promise = new Promise<T>(captureResolvers)
    this.queue.push(write)
    if (!this.draining) {
      this.draining = true
      queueMicrotask(() => void this.drain())
    }
    return promise
  }

  /** Resolves once every write queued so far has run (not necessarily durable yet). */
  idle(): Promise<void> {
    if (!this.draining) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private async drain(): Promise<void> {
    try {
      while (this.head < this.queue.length) {
        const first = this.queue[this.head] as QueuedWrite<C>
        let target = this.target.ready(first.collection)
        if (target === undefined) {
          try {
            target = await this.target.load(first.collection, first.mustExist)
          } catch (err) {
            this.head++
            first.reject(err)
            continue
          }
        }
        let end = this.head
        while (end < this.queue.length && end - this.head < MAX_GROUP && (this.queue[end] as QueuedWrite<C>).collection === first.collection) end++
        const group = this.queue.slice(this.head, end)
        this.head = end
        if (this.head === this.queue.length) {
          this.queue = []
          this.head = 0
        }
        this.runGroup(target, group)
        if (this.head < this.queue.length) await this.yieldTurn()
      }
    } finally {
      this.draining = false
      for (const resolve of this.idleWaiters.splice(0)) resolve()
    }
  }

  private runGroup(target: C, group: QueuedWrite<C>[]): void {
    // What each write returned, or what it threw (failed[i] = 1).
    const values: unknown[] = new Array(group.length)
    const failed = new Uint8Array(group.length)
    let durable: Promise<void>
    try {
      durable = this.target.commit(target, () => {
        for (let i = 0; i < group.length; i++) {
          try {
            const w = group[i] as QueuedWrite<C>
            values[i] = w.op(target, w.a, w.b)
          } catch (err) {
            values[i] = err
            failed[i] = 1
          }
        }
      })
    } catch (err) {
      // The transaction itself failed (an observer threw): no write of the group is confirmed.
      for (const w of group) w.reject(err)
      return
    }
    for (let i = 0; i < group.length; i++) if (failed[i] === 1) (group[i] as QueuedWrite<C>).reject(values[i])
    // One reaction for the group, not a promise per write: the writes of a group wait for its
    // durability together, and settle in the order they were queued.
    durable.then(
      () => {
        for (let i = 0; i < group.length; i++) if (failed[i] === 0) (group[i] as QueuedWrite<C>).resolve(values[i])
      },
      (err: unknown) => {
        for (let i = 0; i < group.length; i++) if (failed[i] === 0) (group[i] as QueuedWrite<C>).reject(err)
      },
    )
  }
}
