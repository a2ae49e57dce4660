import { SyncStep } from '../protocol/sync-frames.js'
import type { SyncHost } from './sync-host.js'
import { mergeInGroups } from './update-outbox.js'

/**
 * Answering a peer that has nothing of a collection from the host's stored updates, instead
 * of encoding the document: read early (for a device just admitted, at its pairing; for any
 * peer, as soon as its hello shows what it lacks), and sent as stored.
 */

/** How long a stored state read for a device just admitted waits for its session (see SyncEngine.expectNewDevice). */
export const READ_AHEAD_MS = 20_000

type StoredRead = Promise<Uint8Array[] | undefined>

/**
 * Stored states read for devices just admitted, before their first session (see
 * SyncEngine.expectNewDevice); a change to a collection drops its reads.
 */
export class ReadAhead {
  private readonly byPeer = new Map<string, { reads: Map<string, StoredRead>; timer: ReturnType<typeof setTimeout> }>()

  /** Start reading `names` for the device; the reads are kept for READ_AHEAD_MS. */
  start(peerId: string, names: Iterable<string>, read: (name: string) => StoredRead): void {
    this.take(peerId)
    const reads = new Map<string, StoredRead>()
    for (const name of names) {
      const p = read(name)
      p.catch(() => undefined) // awaited by the session that asks for it; here only so it is not unhandled meanwhile
      reads.set(name, p)
    }
    const timer = setTimeout(() => this.byPeer.delete(peerId), READ_AHEAD_MS)
    timer.unref?.()
    this.byPeer.set(peerId, { reads, timer })
  }

  /** The reads for this device (of the collections unchanged since), handed out once. */
  take(peerId: string): Map<string, StoredRead> | undefined {
    const ahead = this.byPeer.get(peerId)
    if (ahead === undefined) return undefined
    clearTimeout(ahead.timer)
    this.byPeer.delete(peerId)
    return ahead.reads
  }

  /** A collection changed: a read started before does not hold the change, and the device has no session yet to send it on. */
  changed(name: string): void {
    if (this.byPeer.size > 0) for (const ahead of this.byPeer.values()) ahead.reads.delete(name)
  }
}

/**
 * The stored states one session reads for collections the peer's hello showed it lacks (it
 * asks for each of them with an empty state vector next).
 */
export class StoredStateReads {
  private readonly host: Pick<SyncHost, 'storedState' | 'hasCollection'>
  private readonly reads = new Map<string, StoredRead>()

  constructor(host: Pick<SyncHost, 'storedState' | 'hasCollection'>) {
    this.host = host
  }

  /**
   * Start reading the stored state of `names`: the reads (one LevelDB round trip each, which
   * would otherwise run one after the other as the requests are handled in order) are then
   * done or under way when the requests come; `readAhead` hands out those started at the device's
   * pairing (SyncEngine.expectNewDevice). Whatever the stored state misses by the time it is
   * sent, the session forwards as live updates, as for any answer.
   */
  start(names: string[], readAhead: () => Map<string, StoredRead> | undefined): void {
    const host = this.host
    if (host.storedState === undefined) return
    const ahead = readAhead()
    for (const name of names) {
      if (host.hasCollection?.(name) === false) continue
      const p = ahead?.get(name) ?? host.storedState(name)
      p.catch(() => undefined) // awaited by the session that asks for it; here only so it is not unhandled meanwhile
      this.reads.set(name, p)
    }
  }

  /** The stored state of a collection: the read started earlier, handed out once, or a new one. */
  take(collection: string): StoredRead | undefined {
    const started = this.reads.get(collection)
    this.reads.delete(collection)
    return started ?? this.host.storedState?.(collection)
  }

  clear(): void {
    this.reads.clear()
  }
}

/**
 * The frames that answer a peer with a collection's stored updates. The first (the stored
 * snapshot, usually all there is) goes as it is; any later ones, merged, follow in the STEP2,
 * so the peer has everything once the answer arrives.
 */
export function storedAnswer(stored: readonly [Uint8Array, ...Uint8Array[]]): { step: number; payload: Uint8Array }[] {
  const [first, ...rest] = stored
  if (rest.length === 0) return [{ step: SyncStep.STEP2, payload: first }]
  return [
    { step: SyncStep.UPDATE, payload: first },
    { step: SyncStep.STEP2, payload: mergeInGroups(rest) },
  ]
}
