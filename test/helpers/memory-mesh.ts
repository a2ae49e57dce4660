import * as Y from 'yjs'
import type { KitsyncError } from '../../src/core/errors.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { isOnDemand, ItemSelection, type InterestRule, type SelectionSettings } from '../../src/core/selection.js'
import { SyncEngine } from '../../src/sync/sync-engine.js'
import type { PeerLink, SyncHost } from '../../src/sync/sync-host.js'
import type { SyncSession } from '../../src/sync/sync-session.js'

/** Small seeded PRNG (mulberry32) so a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A device in memory: docs by collection name and a sync engine. */
export class MemoryPeer implements SyncHost {
  readonly docs = new Map<string, Y.Doc>()
  readonly collections = new Map<string, RecordCollection>()
  readonly engine: SyncEngine
  /** Optional SyncHost.shares rule for tests of what goes to whom. */
  shareRule: ((peerId: string, collection: string) => boolean) | undefined
  /** Selective sync (as a real device): set with select(). */
  selection: ItemSelection | undefined
  /** Set by select(): a request for a collection this peer lacks does not create it. */
  hasCollection: ((name: string) => boolean) | undefined
  /** Set by the `adopts` option: a new collection arriving from a peer is created from its update (as LocalWorkspace does). */
  adopt: ((name: string, update: Uint8Array) => Promise<Y.Doc | undefined>) | undefined
  /** Collections this peer adopted, in order. */
  readonly adopted: string[] = []
  /** Set by the `stores` option: every update of each collection in order, as a device's store holds them. */
  storedState: ((name: string) => Promise<Uint8Array[] | undefined>) | undefined
  private readonly logs = new Map<string, Uint8Array[]>()
  /** Peers that asked for a collection were answered from the stored updates this many times. */
  storedAnswers = 0
  constructor(
    readonly id: string,
    readonly workspaceId = 'ws',
    options: { adopts?: boolean; stores?: boolean } = {},
  ) {
    this.engine = new SyncEngine(this)
    if (options.stores === true) {
      // As LocalWorkspace: the stored updates when the log is short, else undefined (the
      // engine encodes the document). Answered a turn later, as a read from disk would be.
      this.storedState = async (name) => {
        const log = this.logs.get(name)
        const copy = log === undefined || log.length > 64 ? undefined : [...log]
        await new Promise((resolve) => setImmediate(resolve))
        if (copy !== undefined) this.storedAnswers++
        return copy
      }
    }
    if (options.adopts === true) {
      this.hasCollection = (name) => this.docs.has(name)
      this.adopt = async (name, update) => {
        if (this.docs.has(name)) return undefined
        const doc = new Y.Doc()
        Y.applyUpdate(doc, update)
        const c = new RecordCollection(name, doc)
        this.docs.set(name, doc)
        this.collections.set(name, c)
        this.adopted.push(name)
        this.record(name, doc, update)
        return doc
      }
    }
  }
  collectionNames(): string[] {
    return [...this.docs.keys()]
  }
  shares(peerId: string, collection: string): boolean {
    if (this.selection !== undefined && !this.selection.syncs(collection, this.docs.has(collection))) return false
    return this.shareRule?.(peerId, collection) ?? true
  }
  interest(): InterestRule[] | undefined {
    return this.selection?.rules(this.docs.keys())
  }
  /** Sync only what these settings select (and tell peers at once if connected). */
  async select(settings: SelectionSettings): Promise<void> {
    this.selection = new ItemSelection(settings)
    this.hasCollection = (name) => this.docs.has(name)
    await this.engine.refreshInterest()
  }
  async openDoc(name: string): Promise<Y.Doc> {
    return this.collection(name).doc
  }
  collection(name: string): RecordCollection {
    let c = this.collections.get(name)
    if (c === undefined) {
      const doc = new Y.Doc()
      c = new RecordCollection(name, doc)
      this.docs.set(name, doc)
      this.collections.set(name, c)
      this.engine.track(name, doc)
      this.record(name, doc)
      // Holding a new on-demand collection widens what this device wants.
      if (this.selection !== undefined && isOnDemand(name)) void this.engine.refreshInterest()
    }
    return c
  }
  /** Keep every update of the collection (the `stores` option), starting with `first`. */
  private record(name: string, doc: Y.Doc, first?: Uint8Array): void {
    if (this.storedState === undefined) return
    const log = first === undefined ? [] : [first]
    this.logs.set(name, log)
    doc.on('update', (u: Uint8Array) => log.push(u))
  }

  snapshot(): Record<string, Record<string, unknown>> {
    const out: Record<string, Record<string, unknown>> = {}
    for (const [name, c] of [...this.collections].sort(([a], [b]) => a.localeCompare(b))) out[name] = c.entries()
    return out
  }
}

/**
 * A network of in-memory links with random delivery: frames of one link arrive in order
 * (as on a stream), but which link delivers next is chosen by the PRNG.
 */
export class MemoryNetwork {
  private readonly queues: { from: MemoryPeer; to: MemoryPeer; session: () => SyncSession | undefined; frames: Uint8Array[]; open: boolean }[] = []
  readonly links = new Map<string, { a: SyncSession; b: SyncSession; close: () => void }>()
  /** Every frame delivered, when `record` is set (for tests that assert on frames). */
  record = false
  readonly delivered: { from: string; to: string; frame: Uint8Array }[] = []
  constructor(private readonly random: () => number) {}

  connect(a: MemoryPeer, b: MemoryPeer): void {
    const key = [a.id, b.id].sort().join('|')
    if (this.links.has(key)) return
    const s: { a?: SyncSession; b?: SyncSession } = {}
    const qab = { from: a, to: b, session: () => s.b, frames: [] as Uint8Array[], open: true }
    const qba = { from: b, to: a, session: () => s.a, frames: [] as Uint8Array[], open: true }
    this.queues.push(qab, qba)
    const close = (): void => {
      if (!qab.open) return
      qab.open = false
      qba.open = false
      this.links.delete(key)
      s.a?.close()
      s.b?.close()
    }
    const link = (peerId: string, q: typeof qab): PeerLink => ({
      peerId,
      bufferedBytes: 0,
      send: (frame) => {
        if (q.open) q.frames.push(frame instanceof Uint8Array ? frame : Buffer.concat(frame))
      },
      close: (_err?: KitsyncError) => close(),
    })
    s.a = a.engine.attach(link(b.id, qab))
    s.b = b.engine.attach(link(a.id, qba))
    this.links.set(key, { a: s.a, b: s.b, close })
  }

  disconnect(a: MemoryPeer, b: MemoryPeer): void {
    this.links.get([a.id, b.id].sort().join('|'))?.close()
  }

  /** Deliver one frame from a random non-empty link; false when nothing is in flight. */
  async step(): Promise<boolean> {
    for (let i = this.queues.length - 1; i >= 0; i--) {
      const q = this.queues[i] as (typeof this.queues)[number]
      if (!q.open && q.frames.length === 0) this.queues.splice(i, 1)
      else if (!q.open) q.frames.length = 0
    }
    const busy = this.queues.filter((q) => q.open && q.frames.length > 0)
    if (busy.length === 0) return false
    const q = busy[Math.floor(this.random() * busy.length)] as (typeof busy)[number]
    const frame = q.frames.shift() as Uint8Array
    const session = q.session()
    if (this.record) this.delivered.push({ from: q.from.id, to: q.to.id, frame })
    if (session !== undefined) {
      session.receive(frame)
      await session.idle()
    }
    return true
  }

  async settle(maxSteps = 1_000_000): Promise<void> {
    for (let i = 0; i < maxSteps; i++) {
      // Let scheduled flushes (microtasks) run before looking for frames.
      await Promise.resolve()
      if (!(await this.step())) {
        await new Promise((r) => setImmediate(r))
        if (!(await this.step())) return
      }
    }
    throw new Error('network did not settle')
  }
}
