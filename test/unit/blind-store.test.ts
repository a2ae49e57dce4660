import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { isKitsyncError, KitsyncError } from '../../src/core/errors.js'
import { decodeBlindFrame, encodeBlindFrame, BlindType } from '../../src/blind/blind-frames.js'
import { BlindClient, type BlindClientHost, type BlindClientSession } from '../../src/blind/blind-client.js'
import { open, open as openEnvelope, seal } from '../../src/blind/blind-envelope.js'
import { BlindServer, LIVE_QUEUE_BYTES } from '../../src/blind/blind-server.js'
import { MemoryBlindStorage, type BlindEntry } from '../../src/blind/blind-storage.js'
import type { PeerLink } from '../../src/sync/sync-host.js'

const KEY1 = new Uint8Array(32).fill(7)
const KEY2 = new Uint8Array(32).fill(9)
const text = new TextDecoder()

describe('blind envelope (AES-256-GCM)', () => {
  const ctx = { workspaceId: 'ws1', epoch: 1, kind: 'entry' as const }
  const items = [{ collection: 'notes', update: new TextEncoder().encode('MARKER-PLAINTEXT') }]

  it('round-trips, and hides the collection name and the content', async () => {
    const blob = await seal(KEY1, ctx, items)
    expect(text.decode(blob)).not.toContain('MARKER')
    expect(text.decode(blob)).not.toContain('notes')
    expect(await open(KEY1, ctx, blob)).toEqual(items)
    // A fresh nonce each time: the same plaintext never gives the same ciphertext.
    expect(await seal(KEY1, ctx, items)).not.toEqual(blob)
  })

  it('refuses another key, another workspace, another epoch, another kind, and any flipped bit', async () => {
    const blob = await seal(KEY1, ctx, items)
    for (const [key, c] of [
      [KEY2, ctx],
      [KEY1, { ...ctx, workspaceId: 'ws2' }],
      [KEY1, { ...ctx, epoch: 2 }],
      [KEY1, { ...ctx, kind: 'snapshot' as const }],
    ] as const) {
      await expect(open(key, c, blob)).rejects.toSatisfy((e: unknown) => isKitsyncError(e, 'DATA_CORRUPTION'))
    }
    const flipped = blob.slice()
    flipped[20] = (flipped[20] as number) ^ 1
    await expect(open(KEY1, ctx, flipped)).rejects.toSatisfy((e: unknown) => isKitsyncError(e, 'DATA_CORRUPTION'))
  })

  it('frames round-trip and reject trailing bytes', () => {
    const f = { type: BlindType.ENTRY, seq: 42, epoch: 3, ciphertext: new Uint8Array([1, 2, 3]) } as const
    expect(decodeBlindFrame(encodeBlindFrame(f))).toEqual(f)
    const bad = new Uint8Array([...encodeBlindFrame(f), 0])
    expect(() => decodeBlindFrame(bad)).toThrow(/trailing/)
  })
})

/** A pair of in-memory links; frames are delivered in order, asynchronously. */
function linkPair(
  a: string,
  b: string,
): [PeerLink & { onFrame?: (f: Uint8Array) => void; onClose?: () => void }, PeerLink & { onFrame?: (f: Uint8Array) => void; onClose?: () => void }] {
  type L = PeerLink & { onFrame?: (f: Uint8Array) => void; onClose?: () => void; other?: L; closed: boolean }
  const make = (peerId: string): L => ({
    peerId,
    bufferedBytes: 0,
    closed: false,
    send(frame: Uint8Array) {
      if (this.closed) return
      const other = this.other as L
      queueMicrotask(() => !other.closed && other.onFrame?.(frame))
    },
    close(_error?: KitsyncError) {
      if (this.closed) return
      this.closed = true
      const other = this.other as L
      queueMicrotask(() => {
        if (other.closed) return
        other.closed = true
        other.onClose?.()
      })
    },
  })
  // Each side's link is named after the peer at the other end.
  const la = make(b)
  const lb = make(a)
  la.other = lb
  lb.other = la
  return [la, lb]
}

class Device implements BlindClientHost {
  readonly docs = new Map<string, Y.Doc>()
  readonly local = new Map<string, unknown>()
  readonly client: BlindClient
  keys: Record<number, Uint8Array> = { 1: KEY1 }
  /** Local-only collections (BlindWiring: workspace.sync.selection.localOnly). */
  readonly localOnly = new Set<string>()
  constructor(
    readonly id: string,
    readonly workspaceId = 'ws',
    policy = { entries: 5, bytes: 1 << 30 },
  ) {
    this.client = new BlindClient(this, { policy })
  }
  collectionNames(): string[] {
    return [...this.docs.keys()].filter((n) => !this.localOnly.has(n))
  }
  shares(name: string): boolean {
    return !this.localOnly.has(name)
  }
  async openDoc(name: string): Promise<Y.Doc> {
    let doc = this.docs.get(name)
    if (doc === undefined) {
      this.docs.set(name, (doc = new Y.Doc()))
      this.client.track(name, doc)
    }
    return doc
  }
  async getLocal(key: string): Promise<unknown> {
    return structuredClone(this.local.get(key))
  }
  async putLocal(key: string, value: unknown): Promise<void> {
    this.local.set(key, structuredClone(value))
  }
  currentKey(): { epoch: number; key: Uint8Array } | undefined {
    const epoch = Math.max(...Object.keys(this.keys).map(Number))
    const key = this.keys[epoch]
    return key === undefined ? undefined : { epoch, key }
  }
  key(epoch: number): Uint8Array | undefined {
    return this.keys[epoch]
  }
  async set(collection: string, key: string, value: string): Promise<void> {
    ;(await this.openDoc(collection)).getMap('m').set(key, value)
  }
  get(collection: string, key: string): unknown {
    return this.docs.get(collection)?.getMap('m').get(key)
  }
  /** Connect to the store; resolves once the catch-up is done (LIVE). `tune` may change the server's side of the link. */
  async connect(server: BlindServer, tune?: (serverSide: PeerLink) => void): Promise<() => void> {
    const [mine, theirs] = linkPair(this.id, 'vps')
    tune?.(theirs)
    const serverSession = server.attach(theirs)
    theirs.onFrame = (f) => serverSession.receive(f)
    theirs.onClose = () => serverSession.close()
    const live = new Promise<void>((resolve, reject) => {
      const offLive = this.client.on('live', () => {
        offLive()
        offClosed()
        resolve()
      })
      const offClosed = this.client.on('closed', (e) => {
        offLive()
        offClosed()
        reject(e.error ?? new Error('closed'))
      })
    })
    const session = await this.client.attach(mine)
    mine.onFrame = (f) => session.receive(f)
    mine.onClose = () => session.close()
    await live
    return () => session.close()
  }
}

/** Wait for a condition driven by microtasks and timers, with a deadline. */
async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

describe('blind store (client and server in memory)', () => {
  const members = new Set(['A', 'B', 'C'])
  const newServer = (storage = new MemoryBlindStorage('s1')): BlindServer =>
    new BlindServer(storage, { workspaceId: () => 'ws', authorize: async (id) => members.has(id) })

  it('a device that comes later gets everything another wrote while it was away, and the store holds no plaintext', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    await a.set('notes', 'n1', 'MARKER-ONE')
    const closeA = await a.connect(server)
    await until(() => storage.state().head >= 1, 'the first upload')
    await a.set('notes', 'n2', 'MARKER-TWO')
    await a.set('todo', 't1', 'MARKER-THREE')
    await until(
      () => (a.local.get('blind:vps') as { dirty: string[]; sv: Record<string, string> } | undefined)?.sv.todo !== undefined,
      'the live upload acknowledged',
    )
    closeA()

    const b = new Device('B')
    await b.connect(server)
    expect(b.get('notes', 'n1')).toBe('MARKER-ONE')
    expect(b.get('notes', 'n2')).toBe('MARKER-TWO')
    expect(b.get('todo', 't1')).toBe('MARKER-THREE')
    for await (const e of storage.entriesAfter(0)) expect(text.decode(e.ciphertext)).not.toMatch(/MARKER|notes|todo/)
    // B uploads nothing back: the store already has all of it.
    const head = storage.state().head
    await b.set('notes', 'n3', 'from B')
    await until(() => storage.state().head === head + 1, 'the upload of B')
    expect(a.get('notes', 'n3')).toBeUndefined()
  })

  it('entries from the store are applied as remote changes (applyUpdate makes its transaction non-local), so clocks and conflict checks see them', async () => {
    const server = newServer()
    const a = new Device('A')
    await a.set('notes', 'n1', 'one')
    const closeA = await a.connect(server)
    await until(() => (a.local.get('blind:vps') as { sv: Record<string, string> } | undefined)?.sv.notes !== undefined, 'the upload acknowledged')
    closeA()
    const b = new Device('B')
    const doc = await b.openDoc('notes')
    const local: boolean[] = []
    doc.on('afterTransaction', (tr: Y.Transaction) => local.push(tr.local))
    await b.connect(server)
    expect(b.get('notes', 'n1')).toBe('one')
    expect(local.length).toBeGreaterThan(0)
    expect(local.every((l) => !l)).toBe(true)
  })

  it('a delete made while no store session exists reaches the store at the next one (a delete moves no state vector)', async () => {
    const server = newServer()
    const a = new Device('A')
    await a.set('notes', 'gone', 'x')
    await a.set('notes', 'kept', 'y')
    const closeA = await a.connect(server)
    await until(() => (a.local.get('blind:vps') as { sv: Record<string, string> } | undefined)?.sv.notes !== undefined, 'the upload acknowledged')
    closeA()
    // No session now: the client has none at all, and marks the collection at once.
    expect(a.client.sessions()).toHaveLength(0)
    ;(await a.openDoc('notes')).getMap('m').delete('gone')
    const vps = (): { dirty: string[] } | undefined => a.local.get('blind:vps') as { dirty: string[] } | undefined
    await a.connect(server)
    await until(() => vps()?.dirty.length === 0, 'the delete uploaded and acknowledged')
    const b = new Device('B')
    await b.connect(server)
    expect(b.get('notes', 'kept')).toBe('y')
    expect(b.get('notes', 'gone')).toBeUndefined()
  })

  it('a device that already has what the store sends (from a peer) learns that the store holds it, and uploads none of it back', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    for (let i = 0; i < 20; i++) await a.set('notes', `k${i}`, `v${i}`)
    const closeA = await a.connect(server)
    await until(() => !a.client.pending(a.client.sessions()[0] as BlindClientSession), 'the upload of A acknowledged')
    closeA()
    const head = storage.state().head
    // B got the same from A directly, as a joining device adopts each collection from its
    // inviter, before it reaches the store.
    const b = new Device('B')
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(a.docs.get('notes') as Y.Doc))
    b.docs.set('notes', copy)
    b.client.track('notes', copy, true)
    await b.connect(server)
    await until(() => !b.client.pending(b.client.sessions()[0] as BlindClientSession), 'B settled with the store')
    expect(storage.state().head).toBe(head)
    // What B writes itself still goes up, and only that.
    await b.set('notes', 'mine', 'from B')
    await until(() => storage.state().head === head + 1, 'the upload of B')
    const c = new Device('C')
    await c.connect(server)
    expect(c.get('notes', 'mine')).toBe('from B')
    expect(c.get('notes', 'k19')).toBe('v19')
  })

  it('a live device that falls behind gets no more entries pushed, catches up from the store at its pace, and misses none', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    await a.connect(server)
    const b = new Device('B')
    // What the server has queued for B, as the test says; a catch-up waits until it is low.
    let queued = 0
    const waiting: (() => void)[] = []
    await b.connect(server, (serverSide) => {
      Object.defineProperty(serverSide, 'bufferedBytes', { get: () => queued })
      serverSide.whenBelow = async (bytes) => {
        while (queued > bytes) await new Promise<void>((resolve) => waiting.push(resolve))
      }
    })
    let lives = 0
    b.client.on('live', () => lives++)
    const write = async (key: string): Promise<void> => {
      const head = storage.state().head
      await a.set('notes', key, `v-${key}`)
      await until(() => storage.state().head === head + 1, `the upload of ${key}`)
    }
    await write('k0')
    await until(() => b.get('notes', 'k0') === 'v-k0', 'k0 pushed to B')
    // B reads slowly: more than LIVE_QUEUE_BYTES wait for it.
    queued = LIVE_QUEUE_BYTES + 1
    for (const key of ['k1', 'k2', 'k3']) await write(key)
    // The first of them went out with the catch-up, which then waits: nothing more is pushed.
    await until(() => b.get('notes', 'k1') === 'v-k1', 'k1 at B')
    expect(b.get('notes', 'k2')).toBeUndefined()
    expect(b.get('notes', 'k3')).toBeUndefined()
    // B may still write meanwhile.
    const head = storage.state().head
    await b.set('notes', 'fromB', 'x')
    await until(() => storage.state().head === head + 1 && a.get('notes', 'fromB') === 'x', 'the write of B at A')
    // B catches up, in order, and is pushed entries again.
    queued = 0
    for (const wake of waiting.splice(0)) wake()
    await until(() => b.get('notes', 'k3') === 'v-k3', 'k2 and k3 at B')
    expect(b.get('notes', 'k2')).toBe('v-k2')
    await write('k4')
    await until(() => b.get('notes', 'k4') === 'v-k4', 'k4 pushed to B')
    expect(lives).toBe(0)
    const session = b.client.sessions()[0] as BlindClientSession
    await until(() => session.cursor === storage.state().head, 'B at the head')
  })

  it('live: an entry uploaded by one device reaches the other connected one', async () => {
    const server = newServer()
    const [a, b] = [new Device('A'), new Device('B')]
    await a.connect(server)
    await b.connect(server)
    await a.set('notes', 'live', 'hello')
    await until(() => b.get('notes', 'live') === 'hello', 'the live entry at B')
  })

  it('snapshots bound the store, and a new device catches up from the snapshot and the entries after it', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    await a.connect(server)
    for (let i = 0; i < 30; i++) {
      await a.set('notes', `k${i}`, `v${i}`)
      await new Promise((r) => setTimeout(r, 0))
    }
    await until(() => storage.state().snapshotSeq > 0, 'a snapshot')
    await until(() => storage.size < 10, 'entries replaced by the snapshot')
    const c = new Device('C')
    await c.connect(server)
    await until(() => c.get('notes', 'k29') === 'v29', 'C up to date')
    for (let i = 0; i < 30; i++) expect(c.get('notes', `k${i}`)).toBe(`v${i}`)
  })

  it('a cursor save that fails (a full disk) rejects nothing unhandled, and the next save writes it', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const server = newServer()
      const a = new Device('A')
      let failing = false
      const put = a.putLocal.bind(a)
      let failures = 0
      a.putLocal = async (key, value) => {
        if (failing && key === 'blind:vps') {
          failures++
          throw new KitsyncError('STORAGE_FAILED', 'no space left on device')
        }
        return put(key, value)
      }
      await a.set('notes', 'n1', 'one')
      await a.connect(server)
      // Live: the save after each acknowledged upload now fails.
      failing = true
      await a.set('notes', 'n1b', 'one more')
      await until(() => failures > 0, 'a failed save')
      // Let the failed save's promise settle, then give the event loop a turn for Node to report it.
      await new Promise((r) => setTimeout(r, 20))
      expect(unhandled).toEqual([])
      failing = false
      await a.set('notes', 'n2', 'two')
      await until(() => (a.local.get('blind:vps') as { sv: Record<string, string> } | undefined)?.sv.notes !== undefined, 'a later save')
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  it('refuses a device that is not (or no longer) a member, on hello and on every write', async () => {
    const server = newServer()
    const x = new Device('X')
    await expect(x.connect(server)).rejects.toSatisfy((e: unknown) => isKitsyncError(e, 'NOT_A_MEMBER') || (e as Error).message === 'closed')
    const b = new Device('B')
    await b.connect(server)
    members.delete('B')
    try {
      const closed = new Promise<void>((resolve) => b.client.on('closed', () => resolve()))
      await b.set('notes', 'after', 'x')
      await closed
      expect(server.liveSessions()).toBe(0)
    } finally {
      members.add('B')
    }
  })

  it('a device without the key of an entry stops before it and keeps its cursor', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    a.keys = { 1: KEY1, 2: KEY2 }
    await a.connect(server)
    await a.set('notes', 'secret', 'epoch two')
    await until(() => storage.state().head >= 1, 'the upload')
    const b = new Device('B') // knows epoch 1 only
    const closed = new Promise<KitsyncError | undefined>((resolve) => b.client.on('closed', (e) => resolve(e.error)))
    await b.connect(server).catch(() => undefined)
    expect((await closed)?.code).toBe('NOT_FOUND')
    expect(b.get('notes', 'secret')).toBeUndefined()
    expect((b.local.get('blind:vps') as { cursor: number } | undefined)?.cursor ?? 0).toBe(0)
  })
  it('uploads sent while others are in flight carry only what is new, and none is lost when the session breaks', async () => {
    // The store takes its time: every PUT waits at the gate, so all of them are in flight.
    let open = (): void => undefined
    const gate = new Promise<void>((resolve) => (open = resolve))
    const storage = new (class extends MemoryBlindStorage {
      override async append(epoch: number, ciphertext: Uint8Array): Promise<number> {
        await gate
        return super.append(epoch, ciphertext)
      }
    })('s1')
    const server = newServer(storage)
    const a = new Device('A', 'ws', { entries: 1e9, bytes: 1 << 30 }) // no snapshot: the entries stay to be counted
    await a.connect(server)
    for (let i = 0; i < 40; i++) {
      await a.set('notes', `k${i}`, `v${i}`)
      await new Promise((r) => setTimeout(r, 0))
    }
    open()
    await until(() => storage.state().head >= 40 && a.client.sessions().every((s) => !a.client.pending(s)), 'every upload acknowledged')
    // Each key is in exactly one entry (against the acknowledged vector alone, entry k held k keys).
    let structs = 0
    for await (const e of storage.entriesAfter(0)) {
      for (const item of await openEnvelope(KEY1, { workspaceId: 'ws', epoch: e.epoch, kind: 'entry' }, e.ciphertext))
        structs += Y.decodeUpdate(item.kind === 'blob' ? item.bytes : item.update).structs.length
    }
    expect(structs).toBe(40)

    // PUTs in flight when the session breaks go again with the next one: nothing is lost.
    let hold = (): void => undefined
    const held = new Promise<void>((resolve) => (hold = resolve))
    const slow = new (class extends MemoryBlindStorage {
      override async append(epoch: number, ciphertext: Uint8Array): Promise<number> {
        await held
        return super.append(epoch, ciphertext)
      }
    })('s2')
    const server2 = newServer(slow)
    const b = new Device('B')
    const closeB = await b.connect(server2)
    for (let i = 0; i < 10; i++) {
      await b.set('todo', `t${i}`, `w${i}`)
      await new Promise((r) => setTimeout(r, 0))
    }
    closeB()
    hold()
    await until(() => b.client.sessions().length === 0, 'the session closed')
    await b.connect(server2)
    await until(() => b.client.sessions().every((s) => !b.client.pending(s)), 'B uploaded again')
    const c = new Device('C')
    await c.connect(server2)
    for (let i = 0; i < 10; i++) expect(c.get('todo', `t${i}`)).toBe(`w${i}`)
  })

  it('a local-only collection never goes to the store, also when it became local-only after changes were noted, nor comes from it', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    a.localOnly.add('private')
    await a.set('private', 'p1', 'MARKER-LOCAL')
    await a.set('notes', 'n1', 'shared')
    await a.connect(server)
    await a.set('private', 'p2', 'MARKER-LOCAL-LIVE')
    await a.set('notes', 'n2', 'shared too')
    // A collection made local-only while live, with a change noted and not yet uploaded.
    await a.set('journal', 'j1', 'before')
    a.localOnly.add('journal')
    await a.set('journal', 'j2', 'MARKER-AFTER')
    await until(() => a.client.sessions().every((s) => !a.client.pending(s)), 'A uploaded everything')
    const b = new Device('B')
    await b.connect(server)
    await until(() => b.get('notes', 'n2') === 'shared too', 'B got the shared collection')
    expect(b.docs.has('private')).toBe(false)
    expect(b.get('journal', 'j2')).toBeUndefined()
    for await (const e of storage.entriesAfter(0)) {
      for (const item of await openEnvelope(KEY1, { workspaceId: 'ws', epoch: e.epoch, kind: 'entry' }, e.ciphertext)) {
        expect(item.kind === 'blob' ? undefined : item.collection).not.toBe('private')
        expect(text.decode(item.kind === 'blob' ? item.bytes : item.update)).not.toContain('MARKER')
      }
    }
    // Nor is anything taken from the store into a collection local-only here.
    const c = new Device('C')
    c.localOnly.add('notes')
    await c.connect(server)
    expect(c.get('notes', 'n1')).toBeUndefined()
  })
  it("a catch-up runs beside other devices' writes and a compaction, and the device still gets everything in order", async () => {
    let release = (): void => undefined
    const gate = new Promise<void>((resolve) => (release = resolve))
    let paused = (): void => undefined
    const atGate = new Promise<void>((resolve) => (paused = resolve))
    let gated = false
    const storage = new (class extends MemoryBlindStorage {
      override async *entriesAfter(after: number): AsyncIterable<BlindEntry> {
        let first = true
        for await (const e of super.entriesAfter(after)) {
          yield e
          // The first catch-up stops after its first entry until the test lets it go on.
          if (first && !gated && after === 0) {
            gated = true
            paused()
            await gate
          }
          first = false
        }
      }
    })('s1')
    const server = newServer(storage)
    const a = new Device('A', 'ws', { entries: 1e9, bytes: 1 << 30 })
    await a.connect(server)
    for (let i = 0; i < 10; i++) {
      await a.set('notes', `k${i}`, `v${i}`)
      await new Promise((r) => setTimeout(r, 0))
    }
    await until(() => a.client.sessions().every((s) => !a.client.pending(s)), 'A uploaded')
    const b = new Device('B')
    const bLive = b.connect(server)
    await atGate
    // While B's catch-up waits: A writes more (stored, not yet for B) and the store compacts.
    for (let i = 10; i < 15; i++) {
      await a.set('notes', `k${i}`, `v${i}`)
      await new Promise((r) => setTimeout(r, 0))
    }
    await until(() => storage.state().head >= 15 && a.client.sessions().every((s) => !a.client.pending(s)), 'A uploaded more while B catches up')
    const doc = a.docs.get('notes') as Y.Doc
    const ciphertext = await seal(KEY1, { workspaceId: 'ws', epoch: 1, kind: 'snapshot' }, [{ collection: 'notes', update: Y.encodeStateAsUpdate(doc) }])
    await server.serial(() => storage.replaceWithSnapshot({ covers: 12, epoch: 1, ciphertext }))
    release()
    await bLive
    for (let i = 0; i < 15; i++) expect(b.get('notes', `k${i}`)).toBe(`v${i}`)
    expect((b.local.get('blind:vps') as { cursor: number } | undefined)?.cursor).toBe(storage.state().head)
    // And live from there on.
    await a.set('notes', 'after', 'live')
    await until(() => b.get('notes', 'after') === 'live', 'the live entry at B')
  })
})
