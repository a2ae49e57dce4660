/**
 * A small typed event emitter. `on` returns the function that unsubscribes, and `iterate`
 * turns an event into an async iterable that ends when the signal aborts.
 */
export type Listener<T> = (payload: T) => void

export class TypedEmitter<Events extends object> {
  /**
   * The listeners of each event, as arrays that are replaced, never changed: `emit` calls the
   * array it found, so a listener added or removed meanwhile takes effect from the next event,
   * without a copy per event (a transaction of ten thousand records emits ten thousand).
   */
  private readonly listeners = new Map<keyof Events, readonly Listener<never>[]>()

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const list = this.listeners.get(event) ?? []
    if (!list.includes(listener as Listener<never>)) this.listeners.set(event, [...list, listener as Listener<never>])
    return () => this.off(event, listener)
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const list = this.listeners.get(event)
    if (list?.includes(listener as Listener<never>) === true)
      this.listeners.set(
        event,
        list.filter((l) => l !== listener),
      )
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.listeners.get(event)
    if (list === undefined) return
    for (const listener of list) (listener as Listener<Events[K]>)(payload)
  }

  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.length ?? 0
  }

  /**
   * Async iteration over one event until `signal` aborts. The subscription starts when this
   * is called (not on the first `next()`), so nothing emitted in between is missed; events
   * are buffered, never dropped.
   */
  iterate<K extends keyof Events>(event: K, signal?: AbortSignal): AsyncGenerator<Events[K]> {
    const queue: Events[K][] = []
    let wake: (() => void) | undefined
    const off = this.on(event, (payload) => {
      queue.push(payload)
      wake?.()
    })
    const cleanup = (): void => {
      off()
      signal?.removeEventListener('abort', onAbort)
    }
    const onAbort = (): void => {
      if (wake === undefined) cleanup()
      else wake()
    }
    signal?.addEventListener('abort', onAbort)
    return (async function* () {
      try {
        while (signal?.aborted !== true) {
          const next = queue.shift()
          if (next !== undefined) {
            yield next
            continue
          }
          await new Promise<void>((resolve) => {
            wake = resolve
          })
          wake = undefined
        }
      } finally {
        cleanup()
      }
    })()
  }
}
