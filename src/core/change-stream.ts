import type { ChangeEvent, ChangesOptions } from './workspace-types.js'

/** The part of a workspace's emitter this needs. */
export interface ChangeSource {
  on(event: 'closed', listener: () => void): () => void
  iterate(event: 'change', signal?: AbortSignal): AsyncGenerator<ChangeEvent>
}

/**
 * `Workspace.changes()` for any workspace that emits `change` and `closed`: ends when the
 * caller's signal aborts or the workspace closes, and filters by collection. The subscription
 * is taken before `ready` (a remote workspace asks its peer to watch there), so an event that
 * arrives right behind the peer's reply is not missed.
 */
export async function* changeStream(emitter: ChangeSource, options: ChangesOptions, ready?: () => Promise<void>): AsyncGenerator<ChangeEvent> {
  const stop = new AbortController()
  const offClosed = emitter.on('closed', () => stop.abort())
  const onAbort = (): void => stop.abort()
  options.signal?.addEventListener('abort', onAbort)
  const events = emitter.iterate('change', stop.signal)
  try {
    await ready?.()
    for await (const change of events) {
      if (options.collection === undefined || change.collection === options.collection) yield change
    }
  } finally {
    offClosed()
    options.signal?.removeEventListener('abort', onAbort)
  }
}
