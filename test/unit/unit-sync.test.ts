import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { UnitDigest } from '../../src/protocol/unit-frames.js'
import { UnitFrameType } from '../../src/protocol/unit-frames.js'
import type { UnitEngineLink, UnitSyncHost } from '../../src/sync/unit-host.js'
import { KitsyncError } from '../../src/core/errors.js'
import { SyncEngine } from '../../src/sync/sync-engine.js'
import { MemoryNetwork, MemoryPeer, prng } from '../helpers/memory-mesh.js'

/**
 * The unit exchange of sync sessions (src/sync/unit-exchange.ts) between engines in memory, with
 * a units host in memory: what crosses the wire when units differ, live and after being apart,
 * and that a collection not exchanged with a peer sends and takes no unit.
 */

/** Units in memory: a Y.Doc per unit; the digest any stable hash of the id and the snapshot. */
class MemoryUnits implements UnitSyncHost {
  readonly docs = new Map<string, Map<string, Y.Doc>>()
  engine: UnitEngineLink | undefined
  applied = 0
  connect(engine: UnitEngineLink): void {
    this.engine = engine
  }
  doc(collection: string, unit: string): Y.Doc {
    let units = this.docs.get(collection)
    if (units === undefined) this.docs.set(collection, (units = new Map()))
    let doc = units.get(unit)
    if (doc === undefined) units.set(unit, (doc = new Y.Doc()))
    return doc
  }
  /** A local edit, committed and sent to peers. */
  edit(collection: string, unit: string, text: string): void {
    const doc = this.doc(collection, unit)
    let update: Uint8Array | undefined
    doc.once('update', (u: Uint8Array) => (update = u))
    doc.getText('text').insert(0, text)
    this.engine?.forward(collection, unit, update as Uint8Array)
  }
  async digests(collection: string): Promise<UnitDigest[]> {
    return [...(this.docs.get(collection) ?? [])].map(([unit, doc]) => ({ unit, digest: fnv(unit, Y.encodeSnapshot(Y.snapshot(doc))) }))
  }
  async stateVector(collection: string, unit: string): Promise<Uint8Array> {
    const doc = this.docs.get(collection)?.get(unit)
    return doc === undefined ? new Uint8Array([0]) : Y.encodeStateVector(doc)
  }
  async diff(collection: string, unit: string, vector: Uint8Array): Promise<Uint8Array | undefined> {
    const doc = this.docs.get(collection)?.get(unit)
    return doc === undefined ? undefined : Y.encodeStateAsUpdate(doc, vector)
  }
  async applyRemote(collection: string, unit: string, update: Uint8Array): Promise<boolean> {
    const doc = this.doc(collection, unit)
    let changed = false
    doc.once('update', () => (changed = true))
    Y.applyUpdate(doc, update, 'sync')
    if (changed) this.applied++
    return changed
  }
  readonly blobs = new Map<string, Uint8Array>()
  async localBlob(hash: string): Promise<Uint8Array | undefined> {
    return this.blobs.get(hash)
  }
  async storeBlob(hash: string, bytes: Uint8Array): Promise<void> {
    this.blobs.set(hash, bytes)
  }
  exchangesBlobs(): boolean {
    return true
  }
}

function fnv(s: string, bytes: Uint8Array): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0
  return h
}

const unitsOf = new WeakMap<MemoryPeer, MemoryUnits>()
/** A device in memory with units (the getter answers while the engine is being built). */
class UnitPeer extends MemoryPeer {
  get units(): MemoryUnits {
    let u = unitsOf.get(this)
    if (u === undefined) unitsOf.set(this, (u = new MemoryUnits()))
    return u
  }
}

const C = '_folder.docs'
const id = (i: number): string => `f${String(i).padStart(21, '0')}`

/** Bytes and frames of unit frames delivered, by direction. */
function unitTraffic(net: MemoryNetwork): { bytes: number; frames: number; byType: Record<number, number> } {
  const byType: Record<number, number> = {}
  let bytes = 0
  let frames = 0
  for (const { frame } of net.delivered) {
    const type = frame[0] as number
    if (type < UnitFrameType.UNIT_SUMS) continue
    bytes += frame.byteLength
    frames++
    byType[type] = (byType[type] ?? 0) + frame.byteLength
  }
  return { bytes, frames, byType }
}

describe('units over sync sessions in memory', () => {
  it('10,000 units, one changed while apart: the sums, one bucket each way, one WANT and its answer', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    const N = 10_000
    for (let i = 0; i < N; i++) {
      a.units.edit(C, id(i), `file ${i}\n`)
      Y.applyUpdate(b.units.doc(C, id(i)), Y.encodeStateAsUpdate(a.units.doc(C, id(i))))
    }
    a.units.edit(C, id(4242), 'changed while apart\n')
    // The collection's records document exists on both (the manifest), so the session exchanges it.
    a.collection(C)
    b.collection(C)
    const net = new MemoryNetwork(prng(7))
    net.record = true
    net.connect(a, b)
    await net.settle()
    expect(b.units.doc(C, id(4242)).getText('text').toString()).toBe('changed while apart\nfile 4242\n')
    expect(b.units.applied).toBe(1)
    const sessions = net.links.get('a|b') as { a: { units: { counters: { wanted: number } } }; b: { units: { counters: { wanted: number } } } }
    expect(sessions.a.units.counters.wanted + sessions.b.units.counters.wanted).toBe(2) // each side asks for the one unit
    const traffic = unitTraffic(net)
    const naive = N * (1 + id(0).length + 4)
    console.log(
      `units catch-up, ${N} units, 1 changed: ${traffic.bytes} B in ${traffic.frames} unit frames both ways ` +
        `(sums ${traffic.byType[UnitFrameType.UNIT_SUMS] ?? 0}, lists ${traffic.byType[UnitFrameType.UNIT_LIST] ?? 0}, ` +
        `wants ${traffic.byType[UnitFrameType.UNIT_WANT] ?? 0}, updates ${traffic.byType[UnitFrameType.UNIT_UPDATE] ?? 0}); ` +
        `a list of every (unit, digest) would be ${naive} B each way`,
    )
    // Two sums frames (1,029 B each), two lists of one bucket (~40 units of 27 B), two WANTs and two answers.
    expect(traffic.bytes).toBeLessThan(6_000)
    expect(traffic.frames).toBe(8)
  })

  it('sends a committed unit update live, merged per tick, and relays it to a third device', async () => {
    const [a, b, c] = [new UnitPeer('a'), new UnitPeer('b'), new UnitPeer('c')]
    for (const p of [a, b, c]) p.collection(C)
    const net = new MemoryNetwork(prng(3))
    net.record = true
    net.connect(a, b)
    net.connect(b, c)
    await net.settle()
    net.delivered.length = 0
    a.units.edit(C, id(1), 'one ')
    a.units.edit(C, id(1), 'two ')
    await net.settle()
    expect(c.units.doc(C, id(1)).getText('text').toString()).toBe('two one ')
    // One UNIT_UPDATE a -> b for both edits of the tick, one b -> c, nothing back.
    const updates = net.delivered.filter((d) => d.frame[0] === UnitFrameType.UNIT_UPDATE).map((d) => `${d.from}>${d.to}`)
    expect(updates).toEqual(['a>b', 'b>c'])
  })

  it('sync now runs the catch-up of units again: a unit that missed the live path arrives, either side asking', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    a.collection(C)
    b.collection(C)
    const net = new MemoryNetwork(prng(11))
    net.connect(a, b)
    await net.settle()
    const sessions = net.links.get('a|b') as { a: { resync(): Promise<unknown> }; b: { resync(): Promise<unknown> } }
    // Written on b without being sent (as if the live update was lost): only a catch-up brings it.
    b.units.doc(C, id(5)).getText('text').insert(0, 'missed')
    const first = sessions.a.resync()
    await net.settle()
    await first
    expect(a.units.doc(C, id(5)).getText('text').toString()).toBe('missed')
    // And from the other side, for a unit a has and b lacks.
    a.units.doc(C, id(6)).getText('text').insert(0, 'missed too')
    const second = sessions.a.resync()
    await net.settle()
    await second
    expect(b.units.docs.get(C)?.get(id(6))?.getText('text').toString()).toBe('missed too')
  })

  it('a collection not exchanged with a peer: no unit frame about it goes either way, and its updates are not taken', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    a.shareRule = (_peer, collection) => collection !== C
    b.shareRule = (_peer, collection) => collection !== C
    a.units.edit(C, id(1), 'private to a')
    a.collection(C)
    const net = new MemoryNetwork(prng(5))
    net.record = true
    net.connect(a, b)
    await net.settle()
    a.units.edit(C, id(1), 'still private ')
    await net.settle()
    expect(unitTraffic(net).frames).toBe(0)
    expect(b.units.docs.get(C)).toBeUndefined()
    // One side shares it, the other not: what the sharing side sends is dropped.
    b.shareRule = undefined
    const net2 = new MemoryNetwork(prng(6))
    net2.connect(a, b)
    await net2.settle()
    b.units.edit(C, id(2), 'from b')
    await net2.settle()
    expect(a.units.docs.get(C)?.has(id(2))).toBe(false)
  })

  it('a blob over the frame limit is answered as not held; one under it is sent', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    // a's engine with a small frame limit (its sends are checked against it).
    Object.defineProperty(a, 'engine', { value: new SyncEngine(a, { limits: { maxFrameBytes: 2_000 } }) })
    a.units.blobs.set('1'.repeat(64), new Uint8Array(5_000))
    a.units.blobs.set('2'.repeat(64), new Uint8Array(500).fill(2))
    const net = new MemoryNetwork(prng(9))
    net.connect(a, b)
    await net.settle()
    const big = b.units.engine?.fetchBlob('1'.repeat(64))
    const small = b.units.engine?.fetchBlob('2'.repeat(64))
    await net.settle()
    expect(await big).toBeUndefined()
    expect(await small).toEqual(new Uint8Array(500).fill(2))
    expect(b.units.blobs.has('2'.repeat(64))).toBe(true)
    // The session went on.
    expect(net.links.has('a|b')).toBe(true)
  })

  it('a collection whose units cannot be read here is left out; the session and the other collections go on', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    const D = '_folder.other'
    for (const p of [a, b]) {
      p.collection(C)
      p.collection(D)
    }
    a.units.edit(C, id(1), 'damaged here')
    a.units.edit(D, id(2), 'readable')
    const digests = a.units.digests.bind(a.units)
    a.units.digests = async (collection) => {
      if (collection === C) throw new KitsyncError('DATA_CORRUPTION', `collection ${C}: damaged snapshot of unit ${id(1)}`)
      return digests(collection)
    }
    const net = new MemoryNetwork(prng(13))
    net.connect(a, b)
    await net.settle()
    expect(net.links.has('a|b')).toBe(true)
    expect(b.units.docs.get(D)?.get(id(2))?.getText('text').toString()).toBe('readable')
    expect(b.units.docs.get(C)).toBeUndefined()
  })
})

describe('a committed unit update reaches the peer whatever the moment it was committed', () => {
  it('committed before the session is ready on either side: the catch-up brings it, with no other round', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    a.collection(C)
    b.collection(C)
    const net = new MemoryNetwork(prng(17))
    net.connect(a, b)
    // Both hellos are in flight: neither session is ready, so no live update goes out.
    const sessions = net.links.get('a|b') as { a: { isReady: boolean }; b: { isReady: boolean } }
    expect([sessions.a.isReady, sessions.b.isReady]).toEqual([false, false])
    a.units.edit(C, id(1), 'from a before ready')
    b.units.edit(C, id(2), 'from b before ready')
    await net.settle()
    expect(b.units.docs.get(C)?.get(id(1))?.getText('text').toString()).toBe('from a before ready')
    expect(a.units.docs.get(C)?.get(id(2))?.getText('text').toString()).toBe('from b before ready')
  })

  it('a collection created on both sides mid-session: its unit updates flow live', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    a.collection('notes')
    const net = new MemoryNetwork(prng(21))
    net.connect(a, b)
    await net.settle()
    a.collection(C)
    b.collection(C)
    a.units.edit(C, id(1), 'made mid-session on a')
    b.units.edit(C, id(2), 'made mid-session on b')
    await net.settle()
    expect(b.units.docs.get(C)?.get(id(1))?.getText('text').toString()).toBe('made mid-session on a')
    expect(a.units.docs.get(C)?.get(id(2))?.getText('text').toString()).toBe('made mid-session on b')
  })
  it('a collection that becomes shared mid-session (a selection change): its units committed before arrive', async () => {
    const a = new UnitPeer('a')
    const b = new UnitPeer('b')
    const D = 'drafts'
    a.collection(D)
    b.collection(D)
    await b.select({ localOnly: ['drafts'] })
    const net = new MemoryNetwork(prng(23))
    net.connect(a, b)
    await net.settle()
    a.units.edit(D, id(1), 'while b kept drafts local')
    b.units.edit(D, id(2), 'kept local on b')
    await net.settle()
    expect(b.units.docs.get(D)?.get(id(1))).toBeUndefined()
    expect(a.units.docs.get(D)?.get(id(2))).toBeUndefined()
    // b shares drafts again: its new interest reaches a, and the units' catch-up of drafts runs both ways.
    await b.select({})
    await net.settle()
    expect(b.units.docs.get(D)?.get(id(1))?.getText('text').toString()).toBe('while b kept drafts local')
    expect(a.units.docs.get(D)?.get(id(2))?.getText('text').toString()).toBe('kept local on b')
  })
})
