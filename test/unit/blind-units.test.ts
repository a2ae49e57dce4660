import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { KitsyncError } from '../../src/core/errors.js'
import { BlindClient, type BlindClientHost } from '../../src/blind/blind-client.js'
import { open as openEnvelope, seal, type EnvelopeItem } from '../../src/blind/blind-envelope.js'
import { BlindServer } from '../../src/blind/blind-server.js'
import { MemoryBlindStorage } from '../../src/blind/blind-storage.js'
import type { BlindUnitHost, UnitMark } from '../../src/blind/client-types.js'
import type { PeerLink } from '../../src/sync/sync-host.js'

/**
 * Shared folders' content (units and blobs) through the blind store, client and server in
 * memory: catch-up from the store alone, snapshots that carry the units and blobs, marks kept one
 * row per unit, deletions, and folders that do not leave the device.
 */

const KEY = new Uint8Array(32).fill(3)
const F = '_folder.sim'

type Link = PeerLink & { onFrame?: (f: Uint8Array) => void; onClose?: () => void; other?: Link; closed: boolean }

function linkPair(a: string, b: string): [Link, Link] {
  const make = (peerId: string): Link => ({
    peerId,
    bufferedBytes: 0,
    closed: false,
    send(frame: Uint8Array) {
      if (this.closed) return
      const other = this.other as Link
      queueMicrotask(() => !other.closed && other.onFrame?.(frame))
    },
    close(_error?: KitsyncError) {
      if (this.closed) return
      this.closed = true
      const other = this.other as Link
      queueMicrotask(() => {
        if (other.closed) return
        other.closed = true
        other.onClose?.()
      })
    },
  })
  const [la, lb] = [make(b), make(a)]
  la.other = lb
  lb.other = la
  return [la, lb]
}

/** A digest of a unit's state as WorkspaceUnits makes it (state vector and delete set), here as a string hash. */
function digestOf(update: Uint8Array): number {
  const sv = Y.encodeStateVectorFromUpdate(update)
  let h = 2166136261
  for (const b of [...sv, 0, ...Y.diffUpdate(update, sv)]) h = Math.imul(h ^ b, 16777619) >>> 0
  return h
}

/** A trusted device: collections as Y.Docs, units as stored updates, blobs, marks: BlindClientHost and BlindUnitHost in memory. */
class Device implements BlindClientHost {
  readonly docs = new Map<string, Y.Doc>()
  readonly local = new Map<string, unknown>()
  readonly unitState = new Map<string, Uint8Array>()
  readonly blobs = new Map<string, Uint8Array>()
  /** Blobs the folders' records name, by folder. */
  readonly named = new Map<string, Set<string>>()
  readonly marks = new Map<string, UnitMark>()
  readonly blobMarks = new Set<string>()
  /** Rows written by each saveMarks (an acknowledged upload writes the rows it carried). */
  readonly markWrites: number[] = []
  readonly notShared = new Set<string>()
  readonly client: BlindClient
  readonly units: BlindUnitHost

  constructor(
    readonly id: string,
    policy = { entries: 1000, bytes: 1 << 30 },
  ) {
    const key = (c: string, u: string): string => `${c}\0${u}`
    this.units = {
      shares: (c) => c.startsWith('_folder.') && !this.notShared.has(c),
      collections: () => [...new Set([...this.unitState.keys()].map((k) => k.split('\0')[0] as string))].filter((c) => this.units.shares(c)),
      digests: async (c) =>
        [...this.unitState].filter(([k]) => k.startsWith(`${c}\0`)).map(([k, v]) => ({ unit: k.split('\0')[1] as string, digest: digestOf(v) })),
      state: async (c, u) => {
        const v = this.unitState.get(key(c, u))
        return v === undefined ? undefined : { update: v, digest: digestOf(v) }
      },
      apply: async (c, u, update) => {
        // As WorkspaceUnits.applyRemote: PROTOCOL_ERROR for an update that does not decode.
        const old = this.unitState.get(key(c, u))
        try {
          Y.decodeUpdate(update)
        } catch (err) {
          throw new KitsyncError('PROTOCOL_ERROR', `malformed update for unit ${u} of ${c}`, { cause: err })
        }
        this.unitState.set(key(c, u), old === undefined ? update : Y.mergeUpdates([old, update]))
      },
      blobsOf: async (c) => [...(this.named.get(c) ?? [])],
      blob: async (h) => this.blobs.get(h),
      putBlob: async (h, b) => {
        // As UnitStore.putBlob: DATA_CORRUPTION for bytes that do not hash to their name (here: a name starting with "bad").
        if (h.startsWith('bad')) throw new KitsyncError('DATA_CORRUPTION', `blob ${h}: its bytes have another SHA-256; it was not stored`)
        this.blobs.set(h, b)
      },
      loadMarks: async (store, c) => {
        const out = new Map<string, UnitMark>()
        for (const [k, m] of this.marks) if (k.startsWith(`${store}\0${c}\0`)) out.set(k.split('\0')[2] as string, m)
        return out
      },
      saveMarks: async (store, c, rows) => {
        let n = 0
        for (const [u, m] of rows) {
          this.marks.set(`${store}\0${c}\0${u}`, m)
          n++
        }
        this.markWrites.push(n)
      },
      loadBlobMarks: async () => new Set(this.blobMarks),
      saveBlobMarks: async (_store, hashes) => {
        for (const h of hashes) this.blobMarks.add(h)
      },
      clearMarks: async () => {
        this.marks.clear()
        this.blobMarks.clear()
      },
    }
    this.client = new BlindClient(this, { policy: { ...policy, jitterMs: 0 }, peerUnitDelay: { quietMs: 50, maxMs: 200 } })
  }

  readonly workspaceId = 'ws'
  collectionNames(): string[] {
    return [...this.docs.keys()]
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
  /** Workspace keys by epoch (a revocation starts a new one, which a revoked device never gets). */
  keys = new Map<number, Uint8Array>([[1, KEY]])
  currentKey(): { epoch: number; key: Uint8Array } {
    const epoch = Math.max(...this.keys.keys())
    return { epoch, key: this.keys.get(epoch) as Uint8Array }
  }
  key(epoch: number): Uint8Array | undefined {
    return this.keys.get(epoch)
  }

  /** Edit a unit's text as the folder layer does (a transaction on its document, the update committed), and tell the client. */
  edit(collection: string, unit: string, fn: (t: Y.Text) => void): void {
    const doc = new Y.Doc()
    const stored = this.unitState.get(`${collection}\0${unit}`)
    if (stored !== undefined) Y.applyUpdate(doc, stored)
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    fn(doc.getText('text'))
    this.unitState.set(`${collection}\0${unit}`, Y.mergeUpdates([...(stored === undefined ? [] : [stored]), ...updates]))
    this.client.unitChanged(collection, unit)
  }

  /** A peer's update of a unit merged here (the sync engine's applyRemote, then 'unit:update'). */
  merge(collection: string, unit: string, update: Uint8Array): void {
    const old = this.unitState.get(`${collection}\0${unit}`)
    this.unitState.set(`${collection}\0${unit}`, old === undefined ? update : Y.mergeUpdates([old, update]))
    this.client.unitChanged(collection, unit, false)
  }

  text(collection: string, unit: string): string | undefined {
    const stored = this.unitState.get(`${collection}\0${unit}`)
    if (stored === undefined) return undefined
    const doc = new Y.Doc()
    Y.applyUpdate(doc, stored)
    return doc.getText('text').toString()
  }

  addBlob(collection: string, hash: string, bytes: Uint8Array): void {
    this.blobs.set(hash, bytes)
    let set = this.named.get(collection)
    if (set === undefined) this.named.set(collection, (set = new Set()))
    set.add(hash)
  }

  async connect(server: BlindServer): Promise<() => void> {
    const [mine, theirs] = linkPair(this.id, 'vps')
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

  /** Until every session of this device has nothing left to send or to be acknowledged. */
  async settled(): Promise<void> {
    await until(() => this.client.sessions().every((s) => !this.client.pending(s)), `${this.id} settled`)
  }
}

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

const members = new Set(['A', 'B', 'C', 'D', 'R'])
const newServer = (storage: MemoryBlindStorage): BlindServer => new BlindServer(storage, { workspaceId: () => 'ws', authorize: async (id) => members.has(id) })

/** Every item the store holds (entries and its snapshot), decrypted. */
async function stored(storage: MemoryBlindStorage): Promise<{ entries: EnvelopeItem[][]; snapshot: EnvelopeItem[] | undefined }> {
  const entries: EnvelopeItem[][] = []
  for await (const e of storage.entriesAfter(0)) entries.push(await openEnvelope(KEY, { workspaceId: 'ws', epoch: e.epoch, kind: 'entry' }, e.ciphertext))
  const snap = await storage.snapshot()
  const snapshot = snap === undefined ? undefined : await openEnvelope(KEY, { workspaceId: 'ws', epoch: snap.epoch, kind: 'snapshot' }, snap.ciphertext)
  return { entries, snapshot }
}

const bytesOf = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('shared folders through the blind store (in memory)', () => {
  it('a device that comes later gets every unit and blob from the store alone; a deletion alone reaches it live', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    a.edit(F, 'u1', (t) => t.insert(0, 'one\ntwo\nthree\n'))
    a.edit(F, 'u2', (t) => t.insert(0, 'second file\n'))
    a.addBlob(F, 'h1', bytesOf('binary one'))
    await a.connect(server)
    await a.settled()
    const c = new Device('C')
    await c.connect(server)
    expect(c.text(F, 'u1')).toBe('one\ntwo\nthree\n')
    expect(c.text(F, 'u2')).toBe('second file\n')
    expect(c.blobs.get('h1')).toEqual(bytesOf('binary one'))
    // C has it all from the store: it uploads nothing back.
    const head = storage.state().head
    await c.settled()
    expect(storage.state().head).toBe(head)

    // A deletion leaves the state vector as it was: it goes all the same (the delete set).
    a.edit(F, 'u1', (t) => t.delete(4, 4))
    await until(() => c.text(F, 'u1') === 'one\nthree\n', 'the deletion on C')
    expect(storage.state().head).toBe(head + 1)
    // A second session uploads nothing that the store holds (the marks were kept).
    a.client.sessions()[0]?.close()
    await until(() => a.client.sessions().length === 0, 'A closed')
    await a.connect(server)
    await a.settled()
    expect(storage.state().head).toBe(head + 1)
  })

  it('an upload writes the marks of the units it carried, not of every unit', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    for (let i = 0; i < 50; i++) a.edit(F, `u${i}`, (t) => t.insert(0, `file ${i}\n`))
    await a.connect(server)
    await a.settled()
    expect(a.markWrites.reduce((x, y) => x + y, 0)).toBe(50)
    a.markWrites.length = 0
    a.edit(F, 'u7', (t) => t.insert(0, 'edited '))
    await until(() => a.markWrites.length > 0, 'the acknowledgement')
    await a.settled()
    expect(a.markWrites).toEqual([1])
    const { entries } = await stored(storage)
    const last = entries.at(-1) as EnvelopeItem[]
    expect(last.map((i) => (i.kind === 'unit' ? i.unit : i.kind))).toEqual(['u7'])
  })

  it('a snapshot carries every unit and blob: a device that joins after it gets every file from the store alone', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A', { entries: 4, bytes: 1 << 30 })
    a.addBlob(F, 'h1', bytesOf('the blob'))
    await a.connect(server)
    for (let i = 0; i < 6; i++) {
      a.edit(F, `u${i}`, (t) => t.insert(0, `content ${i}\n`))
      await a.settled()
    }
    await until(() => storage.state().snapshotSeq > 0, 'a snapshot')
    await a.settled()
    const { entries, snapshot } = await stored(storage)
    expect(snapshot?.filter((i) => i.kind === 'unit').length).toBeGreaterThanOrEqual(4)
    expect(snapshot?.some((i) => i.kind === 'blob' && i.hash === 'h1')).toBe(true)
    expect(entries.length).toBeLessThan(6)
    const d = new Device('D')
    await d.connect(server)
    for (let i = 0; i < 6; i++) expect(d.text(F, `u${i}`)).toBe(`content ${i}\n`)
    expect(d.blobs.get('h1')).toEqual(bytesOf('the blob'))
  })

  it('a folder not shared here never goes up; a device that skipped some of the store never snapshots it away', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A', { entries: 3, bytes: 1 << 30 })
    a.notShared.add('_folder.priv')
    a.edit('_folder.priv', 'p1', (t) => t.insert(0, 'PRIVATE'))
    a.addBlob('_folder.priv', 'hp', bytesOf('PRIVATE BLOB'))
    a.edit(F, 'u1', (t) => t.insert(0, 'shared'))
    await a.connect(server)
    a.edit('_folder.priv', 'p1', (t) => t.insert(0, 'MORE '))
    await a.settled()
    const { entries } = await stored(storage)
    const items = entries.flat()
    expect(items.some((i) => i.kind === 'unit' && i.unit === 'u1')).toBe(true)
    expect(items.some((i) => (i.kind === 'unit' && i.collection === '_folder.priv') || (i.kind === 'blob' && i.hash === 'hp'))).toBe(false)

    // B shares a folder that A does not take: A skips those units, and then never snapshots (that would drop them).
    const b = new Device('B')
    await b.connect(server)
    b.edit('_folder.priv', 'b1', (t) => t.insert(0, 'from B'))
    for (let i = 0; i < 5; i++) {
      b.edit(F, `b${i}`, (t) => t.insert(0, `b ${i}`))
      await b.settled()
    }
    await until(() => a.text(F, 'b4') === 'b 4', 'B’s files on A')
    await a.settled()
    expect(a.text('_folder.priv', 'b1')).toBeUndefined()
    expect((a.local.get('blind:vps') as { partial?: boolean }).partial).toBe(true)
    expect(storage.state().snapshotSeq).toBe(0)
    const c = new Device('C')
    await c.connect(server)
    expect(c.text('_folder.priv', 'b1')).toBe('from B')
  })

  it('a revoked device, without the key of the epoch after its revocation, gets no file content of that epoch', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const a = new Device('A')
    a.edit(F, 'u1', (t) => t.insert(0, 'before the revocation'))
    await a.connect(server)
    await a.settled()
    const r = new Device('R')
    await r.connect(server)
    expect(r.text(F, 'u1')).toBe('before the revocation')
    r.client.sessions()[0]?.close()
    // R is revoked: A has a new epoch's key, R does not.
    a.keys.set(2, new Uint8Array(32).fill(4))
    a.edit(F, 'u2', (t) => t.insert(0, 'after the revocation'))
    a.addBlob(F, 'h2', bytesOf('blob after'))
    a.edit(F, 'u1', (t) => t.insert(0, 'edited '))
    await a.settled()
    const closed = new Promise<KitsyncError | undefined>((resolve) => r.client.on('closed', (e) => resolve(e.error)))
    await expect(r.connect(server)).rejects.toMatchObject({ code: 'NOT_FOUND' })
    expect((await closed)?.message).toMatch(/no workspace key of epoch 2/)
    expect(r.text(F, 'u2')).toBeUndefined()
    expect(r.text(F, 'u1')).toBe('before the revocation')
    expect(r.blobs.has('h2')).toBe(false)
  })

  it('a unit merged from a peer goes up only when the store did not get it from its author', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const [a, b] = [new Device('A'), new Device('B')]
    await a.connect(server)
    await b.connect(server)
    await a.settled()
    await b.settled()
    // A writes and uploads; B got it from A directly too (a peer), before the store's entry or after.
    a.edit(F, 'u1', (t) => t.insert(0, 'from A'))
    b.merge(F, 'u1', a.unitState.get(`${F}\0u1`) as Uint8Array)
    await a.settled()
    await new Promise((r) => setTimeout(r, 100)) // past B's wait for peers' merges
    await b.settled()
    expect(storage.state().head).toBe(1)
    // A is away from the store: B uploads what it merged from A, once the wait is over.
    a.client.sessions()[0]?.close()
    await until(() => a.client.sessions().length === 0, 'A closed')
    const doc = new Y.Doc()
    doc.getText('text').insert(0, 'only B can tell the store')
    b.merge(F, 'u2', Y.encodeStateAsUpdate(doc))
    await until(() => storage.state().head === 2, 'B uploads it')
    const c = new Device('C')
    await c.connect(server)
    expect(c.text(F, 'u2')).toBe('only B can tell the store')
  })

  it('a malformed unit update or a blob that is not what its hash says, sealed by a member, is skipped: the rest of the entry applies and the cursor moves on', async () => {
    const storage = new MemoryBlindStorage('s1')
    const server = newServer(storage)
    const good = new Y.Doc()
    good.getText('text').insert(0, 'good text')
    const items: EnvelopeItem[] = [
      { kind: 'unit', collection: F, unit: 'broken', update: new Uint8Array([255, 255, 255, 7]) },
      { kind: 'blob', hash: 'bad-hash', bytes: bytesOf('not that') },
      { kind: 'unit', collection: F, unit: 'fine', update: Y.encodeStateAsUpdate(good) },
      { kind: 'blob', hash: 'h-ok', bytes: bytesOf('blob ok') },
    ]
    await storage.append(1, await seal(KEY, { workspaceId: 'ws', epoch: 1, kind: 'entry' }, items))
    const c = new Device('C')
    await c.connect(server)
    expect(c.text(F, 'fine')).toBe('good text')
    expect(c.text(F, 'broken')).toBeUndefined()
    expect(c.blobs.get('h-ok')).toEqual(bytesOf('blob ok'))
    expect(c.blobs.has('bad-hash')).toBe(false)
    expect(c.client.sessions()[0]?.cursor).toBe(1)
    expect(c.client.sessions()[0]?.live).toBe(true)
  })
})
