import { KitsyncError, toKitsyncError } from '../core/errors.js'

/** A blob asked for: the peers that have not answered yet, and who waits for it. */
interface Fetch {
  waiting: Set<string>
  resolve: (bytes: Uint8Array | undefined) => void
  reject: (err: unknown) => void
}

/**
 * Blobs asked for from connected peers (BLOB_WANT), one fetch per hash however many ask. The
 * first answer with bytes that keep their hash wins; the fetch ends with undefined once every
 * peer asked has said it has none or gone.
 */
export class BlobFetches {
  private readonly fetches = new Map<string, { fetch: Fetch; promise: Promise<Uint8Array | undefined> }>()

  constructor(
    private readonly store: (hash: string, bytes: Uint8Array) => Promise<void>,
    private readonly log: (message: string, err: unknown) => void = () => undefined,
  ) {}

  /** Ask `peers` (by `ask`) for a blob. */
  fetch(hash: string, peers: { peerId: string; ask: () => void }[], signal?: AbortSignal): Promise<Uint8Array | undefined> {
    if (signal?.aborted === true) return Promise.reject(new KitsyncError('ABORTED', `fetching blob ${hash} was aborted`))
    let running = this.fetches.get(hash)
    if (running === undefined) {
      if (peers.length === 0) return Promise.resolve(undefined)
      let fetch: Fetch | undefined
      const promise = new Promise<Uint8Array | undefined>((resolve, reject) => {
        fetch = { waiting: new Set(peers.map((p) => p.peerId)), resolve, reject }
      })
      running = { fetch: fetch as Fetch, promise }
      this.fetches.set(hash, running)
      const done = (): void => void this.fetches.delete(hash)
      promise.then(done, done)
      for (const p of peers) p.ask()
    }
    if (signal === undefined) return running.promise
    return new Promise((resolve, reject) => {
      const abort = (): void => reject(new KitsyncError('ABORTED', `fetching blob ${hash} was aborted`))
      signal.addEventListener('abort', abort, { once: true })
      running.promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
    })
  }

  /** A peer answered: bytes (stored once their hash is checked), or none. */
  answer(hash: string, bytes: Uint8Array | undefined, peerId: string): void {
    const running = this.fetches.get(hash)
    if (running === undefined || !running.fetch.waiting.has(peerId)) return
    if (bytes === undefined) {
      this.gone(hash, peerId)
      return
    }
    this.store(hash, bytes).then(
      () => running.fetch.resolve(bytes),
      (err: unknown) => {
        // Bytes that do not have the hash (a broken or hostile peer): ask the others.
        this.log(`blob ${hash} from ${peerId} refused: ${toKitsyncError(err).message}`, err)
        this.gone(hash, peerId)
      },
    )
  }

  /** A peer will not answer (it has none, or its session ended). */
  gone(hash: string | undefined, peerId: string): void {
    for (const [h, { fetch }] of this.fetches) {
      if (hash !== undefined && h !== hash) continue
      if (fetch.waiting.delete(peerId) && fetch.waiting.size === 0) fetch.resolve(undefined)
    }
  }
}
