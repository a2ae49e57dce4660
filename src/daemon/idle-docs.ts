import { debugLog } from '../core/debug-log.js'
import { isInternalCollection } from '../core/membership.js'
import type { CollectionLog } from '../store/collection-log.js'
import { releaseMemory } from './memory-release.js'

const log = debugLog('daemon:collections')

/**
 * When to drop an idle collection's document from memory (unloadIdle, below, does the
 * dropping). A loaded document costs about 1.4 KB of heap per record for as long as the process
 * runs: 100,000 records held a peer at 400-660 MB RSS, idle. Its index rows (store/record-rows.ts)
 * answer reads without it, and the next write, merged update or sync session loads it again
 * from the store (100,000 records: about half a second).
 *
 * A collection is dropped once nothing used it (loaded, written, merged into, looked up by a
 * sync session) for its idle time: UNLOAD_IDLE_MS at first. One that is loaded again soon after
 * being dropped (within RELOAD_SOON_FACTOR idle times) keeps its document twice as long from
 * then on, up to MAX_IDLE_MS: a collection written every few seconds is not reloaded for each
 * write. A document loaded again writes as the same Yjs client as the one dropped (it holds all
 * of that client's updates, stored before it was dropped): a reload adds no entry to the
 * collection's state vector.
 */

/** Idle time after which a collection's document is dropped, at first. */
export const UNLOAD_IDLE_MS = 2_000
/** The longest idle time a collection that keeps being reloaded gets. */
export const MAX_IDLE_MS = 600_000
/** Loaded again within this many idle times of being dropped: its idle time doubles. */
const RELOAD_SOON_FACTOR = 10

export interface IdleDocsOptions {
  /** Idle time after which a collection is dropped, at first; 0 or Infinity: never drop one. */
  idleMs?: number | undefined
  /** Drop the collection if it is still idle (`stillIdle`, checked after each await); the dropped document's client id, undefined: not dropped. */
  unload(name: string, stillIdle: () => boolean): Promise<number | undefined>
  now?: () => number
}

export class IdleDocs {
  private readonly baseMs: number
  private readonly now: () => number
  private readonly unloadOne: IdleDocsOptions['unload']
  /** Loaded collections (those that may be dropped) and when each was last used. */
  private readonly lastUse = new Map<string, number>()
  /** Idle time of a collection that was reloaded soon after being dropped. */
  private readonly idleMs = new Map<string, number>()
  /** When each dropped collection was dropped. */
  private readonly droppedAt = new Map<string, number>()
  /** The Yjs client id of each dropped collection's document. */
  private readonly clientIds = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private timerAt = Infinity
  private stopped = false
  /** Collections dropped so far (status and tests). */
  unloads = 0

  constructor(options: IdleDocsOptions) {
    const base = options.idleMs ?? UNLOAD_IDLE_MS
    this.baseMs = base > 0 ? base : Infinity
    this.now = options.now ?? Date.now
    this.unloadOne = options.unload
  }

  /**
   * A collection was loaded, its stored updates applied (set before: Yjs would take its own
   * client's updates, applied as remote ones, for another client using its id, and pick a new one).
   * Its document takes the client id of the one dropped, if any.
   */
  loaded(name: string, doc: { clientID: number }): void {
    const id = this.clientIds.get(name)
    if (id !== undefined) doc.clientID = id
    if (this.baseMs === Infinity) return
    const t = this.now()
    const dropped = this.droppedAt.get(name)
    if (dropped !== undefined) {
      this.droppedAt.delete(name)
      const idle = this.idleOf(name)
      if (t - dropped < idle * RELOAD_SOON_FACTOR) this.idleMs.set(name, Math.min(MAX_IDLE_MS, idle * 2))
    }
    if (this.stopped) return
    this.lastUse.set(name, t)
    this.schedule(t + this.idleOf(name))
  }

  /** A collection was used (one that may not be dropped, or is not loaded, is not tracked). */
  used(name: string, t = this.now()): void {
    if (!this.lastUse.has(name) || this.stopped) return
    this.lastUse.set(name, t)
    this.schedule(t + this.idleOf(name))
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.lastUse.clear()
  }

  private idleOf(name: string): number {
    return this.idleMs.get(name) ?? this.baseMs
  }

  private schedule(at: number): void {
    if (this.stopped || at >= this.timerAt) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(() => void this.check(), Math.max(0, at - this.now()))
    this.timer.unref()
  }

  private async check(): Promise<void> {
    this.timer = undefined
    this.timerAt = Infinity
    const t = this.now()
    let next = Infinity
    for (const [name, last] of [...this.lastUse]) {
      const due = last + this.idleOf(name)
      if (due > t) {
        next = Math.min(next, due)
        continue
      }
      const stillIdle = (): boolean => !this.stopped && this.lastUse.get(name) === last
      let clientId: number | undefined
      try {
        clientId = await this.unloadOne(name, stillIdle)
      } catch {
        // Not dropped (a failed flush is reported to whoever writes next); tried again later.
      }
      if (clientId !== undefined) {
        this.clientIds.set(name, clientId)
        this.unloads++
        // (Loaded again meanwhile: tracked as loaded.)
        if (this.lastUse.get(name) === last) {
          this.lastUse.delete(name)
          this.droppedAt.set(name, this.now())
        }
      } else if (this.lastUse.get(name) === last) {
        // Not droppable now (a write not yet stored, rows behind): looked at again after another idle time.
        this.lastUse.set(name, this.now())
        next = Math.min(next, this.now() + this.idleOf(name))
      } else {
        const used = this.lastUse.get(name)
        if (used !== undefined) next = Math.min(next, used + this.idleOf(name))
      }
    }
    if (next < Infinity) this.schedule(next)
  }
}

/** What unloadIdle needs of the collection registry. */
export interface DocHolder {
  readonly store: { forget(name: string, log: CollectionLog): void }
  isKnown(name: string): boolean
  rowsReadable(name: string): Promise<boolean>
  /** Forget the collection's document if `entry` is still the loaded one; false: it is not. */
  forgetDoc(name: string, entry: LoadedDoc): boolean
}

/** A loaded collection, as unloadIdle sees it. */
export interface LoadedDoc {
  collection: { doc: { destroy(): void; clientID: number } }
  log: CollectionLog
  lastWrite: Promise<void>
}

/** A dropped document stored in this many bytes or more is worth a garbage collection at once (see memory-release.ts). */
const RELEASE_AFTER_BYTES = 1 << 20

/**
 * Drop an idle app collection's document (CollectionRegistry) once every update of it is in
 * LevelDB and its rows reflect them: reads come from the rows again (see forRead), and the
 * next write, merge or sync session loads it from the store. The sync engine and the blind
 * client let go of a document when it is destroyed. Undefined: not now (it stays loaded).
 */
export async function unloadIdle(holder: DocHolder, name: string, entry: LoadedDoc | undefined, stillIdle: () => boolean): Promise<number | undefined> {
  if (entry === undefined || !holder.isKnown(name) || isInternalCollection(name) || entry.log.failed !== undefined) return undefined
  await entry.log.flush()
  await entry.lastWrite
  if (!stillIdle() || !(await holder.rowsReadable(name))) return undefined
  // Used while it was flushed or its rows were checked: it stays.
  if (!stillIdle() || !holder.forgetDoc(name, entry)) return undefined
  const { bytes } = entry.log.stats()
  entry.log.stop()
  holder.store.forget(name, entry.log)
  entry.collection.doc.destroy()
  log(`collection ${name}: idle, its document was dropped from memory (${bytes} bytes stored)`)
  // From a task of its own: until this function returns, its stack still holds the document.
  if (bytes >= RELEASE_AFTER_BYTES) setImmediate(releaseMemory)
  return entry.collection.doc.clientID
}
