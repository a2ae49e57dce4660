import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Hlc } from '../../src/core/hlc.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { decodeEntry, KV_DEDUP, RecordKv, type KvEntry } from '../../src/core/record-kv.js'
import { RECORDS_ARRAY } from '../../src/core/record-layout.js'

/**
 * The layout-2 slot map (src/core/record-kv.ts): a Y.Array of {k, v} entries where a set
 * deletes the old entry and pushes a new one, and concurrent entries under one key end with the
 * rightmost one on every device.
 */

/** A deterministic random source (mulberry32). */
function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Replica {
  doc: Y.Doc
  kv: RecordKv<number>
  /** Every update this replica made itself (its writes and its dedup deletes). */
  made: Uint8Array[]
}

const REMOTE = Symbol('remote')

function replica(client: number): Replica {
  const doc = new Y.Doc()
  doc.clientID = client
  const kv = new RecordKv<number>(doc, 'kv')
  const made: Uint8Array[] = []
  doc.on('update', (u: Uint8Array, origin: unknown) => {
    if (origin !== REMOTE) made.push(u)
  })
  return { doc, kv, made }
}

const asObject = (kv: RecordKv<number>): Record<string, number> => Object.fromEntries([...kv.entries()].sort(([a], [b]) => (a < b ? -1 : 1)))
const liveEntries = (r: Replica): KvEntry<number>[] =>
  r.doc
    .getArray<Uint8Array>('kv')
    .toArray()
    .map((bytes) => decodeEntry(bytes) as KvEntry<number>)

function exchange(replicas: Replica[]): void {
  for (let round = 0; round < 6; round++) {
    for (const a of replicas) for (const b of replicas) if (a !== b) Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc)), REMOTE)
    if (new Set(replicas.map((r) => Buffer.from(Y.encodeStateVector(r.doc)).toString('hex'))).size === 1) return
  }
  throw new Error('replicas did not converge')
}

describe('RecordKv', () => {
  it('gets, sets, deletes and iterates like a map, and tells observers the keys a transaction changed with its origin', () => {
    const { doc, kv } = replica(1)
    const seen: { keys: string[]; origin: unknown; local: boolean }[] = []
    kv.observe((keys, tx) => seen.push({ keys: [...keys].sort(), origin: tx.origin, local: tx.local }))
    doc.transact(() => {
      kv.set('a', 1)
      kv.set('b', 2)
    }, 'w1')
    kv.set('a', 3)
    expect(kv.get('a')).toBe(3)
    expect(kv.has('b')).toBe(true)
    expect(kv.size).toBe(2)
    kv.delete('b')
    kv.delete('missing')
    expect(kv.has('b')).toBe(false)
    expect(asObject(kv)).toEqual({ a: 3 })
    // The old entries are deleted, not kept beside the new ones.
    expect(liveEntries({ doc, kv, made: [] })).toEqual([{ k: 'a', v: 3 }])
    expect(seen).toEqual([
      { keys: ['a', 'b'], origin: 'w1', local: true },
      { keys: ['a'], origin: null, local: true },
      { keys: ['b'], origin: null, local: true },
    ])
    // A remote update tells the keys it changed, with the applier's origin.
    const other = replica(2)
    const remote: string[][] = []
    other.kv.observe((keys, tx) => remote.push([...keys, String(tx.origin === REMOTE)]))
    Y.applyUpdate(other.doc, Y.encodeStateAsUpdate(doc), REMOTE)
    expect(asObject(other.kv)).toEqual({ a: 3 })
    expect(remote).toEqual([['a', 'true']])
    // A fresh replica loading the state reads the same.
    const loaded = new Y.Doc()
    Y.applyUpdate(loaded, Y.encodeStateAsUpdate(doc))
    expect(asObject(new RecordKv<number>(loaded, 'kv'))).toEqual({ a: 3 })
  })

  it('keeps the rightmost of two concurrent entries under one key on every device, and each device deletes the other', () => {
    const a = replica(1)
    const b = replica(2)
    a.kv.set('k', 1)
    b.kv.set('k', 2)
    exchange([a, b])
    expect(a.kv.get('k')).toBe(b.kv.get('k'))
    const entries = liveEntries(a)
    expect(entries).toHaveLength(1)
    expect(liveEntries(b)).toEqual(entries)
    // The survivor is the rightmost of the two in the merged array (Yjs orders them the same everywhere).
    const merged = new Y.Doc()
    merged.getArray('kv') // a plain array, no dedup
    Y.applyUpdate(merged, Y.mergeUpdates([a.made[0] as Uint8Array, b.made[0] as Uint8Array]))
    const both = merged
      .getArray<Uint8Array>('kv')
      .toArray()
      .map((bytes) => decodeEntry(bytes) as KvEntry<number>)
    expect(both).toHaveLength(2)
    expect(a.kv.get('k')).toBe((both[1] as KvEntry<number>).v)
  })

  it('deletes only the entries its writer saw: a concurrent set survives a delete', () => {
    const a = replica(1)
    const b = replica(2)
    const c = replica(3)
    a.kv.set('k', 1)
    a.kv.set('gone', 1)
    exchange([a, b, c])
    // b deletes k (it saw a's entry); c overwrites k meanwhile; a deletes `gone` that nobody rewrites.
    b.kv.delete('k')
    c.kv.set('k', 3)
    a.kv.delete('gone')
    exchange([a, b, c])
    for (const r of [a, b, c]) {
      expect(asObject(r.kv)).toEqual({ k: 3 })
      expect(liveEntries(r)).toEqual([{ k: 'k', v: 3 }])
    }
  })

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('converges to one map on 3 devices whatever the delivery order (seed %i)', (seed) => {
    const rnd = random(seed)
    const replicas = [replica(11), replica(22), replica(33)]
    let dedups = 0
    for (const r of replicas) r.doc.on('afterTransaction', (tx: Y.Transaction) => void (tx.origin === KV_DEDUP && dedups++))
    const keys = ['a', 'b', 'c', 'd', 'e']
    // Rounds of concurrent writes, each followed by a random partial delivery of what was made so far.
    const delivered = replicas.map(() => new Set<Uint8Array>())
    for (let round = 0; round < 12; round++) {
      for (const r of replicas) {
        const n = 1 + Math.floor(rnd() * 4)
        for (let i = 0; i < n; i++) {
          const key = keys[Math.floor(rnd() * keys.length)] as string
          if (rnd() < 0.2) r.kv.delete(key)
          else r.kv.set(key, Math.floor(rnd() * 1000))
        }
      }
      // Each device gets a random subset of the others' updates, in a random order.
      replicas.forEach((to, ti) => {
        const pool = replicas.flatMap((from, fi) => (fi === ti ? [] : from.made.filter((u) => !delivered[ti]?.has(u))))
        for (const u of pool.sort(() => rnd() - 0.5)) {
          if (rnd() < 0.5) continue
          delivered[ti]?.add(u)
          Y.applyUpdate(to.doc, u, REMOTE)
        }
      })
    }
    exchange(replicas)
    // The schedule made concurrent entries under one key, which the devices deleted.
    expect(dedups).toBeGreaterThan(0)
    const first = asObject((replicas[0] as Replica).kv)
    for (const r of replicas) {
      expect(asObject(r.kv)).toEqual(first)
      // One live entry per key, and the map is what the entries say.
      const entries = liveEntries(r)
      expect(new Set(entries.map((e) => e.k)).size).toBe(entries.length)
      expect(Object.fromEntries(entries.map((e) => [e.k, e.v]))).toEqual(first)
    }
    // A device that starts from the merged state reads the same map.
    const fresh = new Y.Doc()
    Y.applyUpdate(fresh, Y.encodeStateAsUpdate((replicas[0] as Replica).doc))
    expect(asObject(new RecordKv<number>(fresh, 'kv'))).toEqual(first)
  })

  it('dedups in a transaction of its own, marked KV_DEDUP, right after the one that brought the duplicate', () => {
    const a = replica(1)
    const b = replica(2)
    a.kv.set('k', 1)
    b.kv.set('k', 2)
    const origins: unknown[] = []
    b.doc.on('afterTransaction', (tx: Y.Transaction) => origins.push(tx.origin))
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc), REMOTE)
    expect(origins).toEqual([REMOTE, KV_DEDUP])
  })
})

describe('layout 2 in a RecordCollection', () => {
  it('100 keys x 1,000 overwrites: the encoded state stays within 64 KB (a Y.Map keeps every overwrite)', () => {
    const run = (layout: 1 | 2): number => {
      const doc = new Y.Doc()
      let wall = 1_800_000_000_000
      const c = new RecordCollection('positions', doc, { clock: new Hlc('yKSUKPH5', () => wall), layout })
      for (let round = 0; round < 1000; round++) {
        wall++
        for (let k = 0; k < 100; k++) c.set(`p${k}`, { x: round, y: k }, 'w')
      }
      expect(c.get('p7')).toEqual({ x: 999, y: 7 })
      expect(c.size).toBe(100)
      return Y.encodeStateAsUpdate(doc).byteLength
    }
    const two = run(2)
    expect(two).toBeLessThanOrEqual(64 * 1024)
    // The reason for layout 2: the same on layout 1 keeps some 9 bytes per overwrite.
    expect(run(1)).toBeGreaterThan(10 * two)
  })

  it('takes the layout of the first content a new document receives, and reads a document of both layouts as layout 1 everywhere', () => {
    const old = new Y.Doc()
    const v1 = new RecordCollection('notes', old, { layout: 1, clock: new Hlc('Aaaaaaaa') })
    v1.set('n1', { text: 'old' }, 'w')
    // A device that gets the layout-1 copy into an empty document reads layout 1.
    const joiner = new Y.Doc()
    const j = new RecordCollection('notes', joiner, { clock: new Hlc('Bbbbbbbb') })
    expect(j.layout).toBeUndefined()
    Y.applyUpdate(joiner, Y.encodeStateAsUpdate(old), REMOTE)
    expect(j.layout).toBe(1)
    expect(j.get('n1')).toEqual({ text: 'old' })
    // A new collection written first here is layout 2.
    const fresh = new Y.Doc()
    const f = new RecordCollection('notes', fresh, { clock: new Hlc('Cccccccc') })
    f.set('n2', { text: 'new' }, 'w')
    expect(f.layout).toBe(2)
    expect(fresh.getArray(RECORDS_ARRAY).length).toBe(1)
    // The same name created apart on both: both devices end up reading layout 1.
    const changes: string[] = []
    f.onChange((cs) => changes.push(...cs.map((c) => `${c.key}=${JSON.stringify(c.value)}`)))
    let told = false
    f.mixedLayout(() => (told = true))
    Y.applyUpdate(fresh, Y.encodeStateAsUpdate(old), REMOTE)
    Y.applyUpdate(old, Y.encodeStateAsUpdate(fresh), REMOTE)
    expect(told).toBe(true)
    expect(f.layout).toBe(1)
    expect(v1.layout).toBe(1)
    expect(f.mixedLayout()).toBe(true)
    expect(f.entries()).toEqual({ n1: { text: 'old' } })
    expect(v1.entries()).toEqual({ n1: { text: 'old' } })
    expect(changes.sort()).toEqual(['n1={"text":"old"}', 'n2=undefined'])
    // A reload of either document reads the same.
    const reload = new Y.Doc()
    Y.applyUpdate(reload, Y.encodeStateAsUpdate(fresh))
    expect(new RecordCollection('notes', reload, { layout: 2 }).entries()).toEqual({ n1: { text: 'old' } })
  })
})
