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

interface QueuedWrite<C> {
  collection: string
  mustExist: boolean
  op: (target: C) => unknown
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
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

  /** Queue a write; resolves with what `op` returned once its transaction is durable. */
  push<T>(collection: string, mustExist: boolean, op: (target: C) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ collection, mustExist, op, resolve: resolve as (value: unknown) => void, reject })
      if (!this.draining) {
        this.draining = true
        queueMicrotask(() => void this.drain())
      }
    })
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
    const results: { ok: boolean; value: unknown }[] = new Array(group.length)
    let durable: Promise<void>
    try {
      durable = this.target.commit(target, () => {
        for (let i = 0; i < group.length; i++) {
          try {
            results[i] = { ok: true, value: (group[i] as QueuedWrite<C>).op(target) }
          } catch (err) {
            results[i] = { ok: false, value: err }
          }
        }
      })
    } catch (err) {
      // The transaction itself failed (an observer threw): no write of the group is confirmed.
      for (const w of group) w.reject(err)
      return
    }
    for (let i = 0; i < group.length; i++) {
      const w = group[i] as QueuedWrite<C>
      const r = results[i] as { ok: boolean; value: unknown }
      if (r.ok) w.resolve(durable.then(() => r.value))
      else w.reject(r.value)
    }
  }
}
