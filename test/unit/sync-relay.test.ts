import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { decodeFrame, FrameType, SyncStep } from '../../src/protocol/sync-frames.js'
import { isUnitFrame } from '../../src/protocol/unit-frames.js'
import { isHistoryFrame } from '../../src/sync/history-exchange.js'
import type { SyncSession } from '../../src/sync/sync-session.js'
import { UpdateOutbox } from '../../src/sync/update-outbox.js'
import { applyPeerUpdate } from '../../src/sync/update-relay.js'
import { MemoryPeer } from '../helpers/memory-mesh.js'

/**
 * A middle peer passes a peer's update on as soon as it is integrated, before its own
 * observers and update listeners (change events, derived rows, the write-ahead log in a real
 * device) run: src/sync/update-relay.ts.
 */

/** One direction of a link: the frames `from` sent, delivered in order to `to`'s session for `from`. */
interface Wire {
  from: string
  to: string
  frames: Uint8Array[]
  session: () => SyncSession
}

class Links {
  readonly wires: Wire[] = []

  connect(a: MemoryPeer, b: MemoryPeer): { ab: Wire; ba: Wire } {
    const s: { a?: SyncSession; b?: SyncSession } = {}
    const ab: Wire = { from: a.id, to: b.id, frames: [], session: () => s.b as SyncSession }
    const ba: Wire = { from: b.id, to: a.id, frames: [], session: () => s.a as SyncSession }
    const link = (peerId: string, wire: Wire) => ({
      peerId,
      bufferedBytes: 0,
      send: (frame: Uint8Array | readonly Uint8Array[]) => void wire.frames.push(frame instanceof Uint8Array ? frame : Buffer.concat(frame)),
      close: () => undefined,
    })
    s.a = a.engine.attach(link(b.id, ab))
    s.b = b.engine.attach(link(a.id, ba))
    this.wires.push(ab, ba)
    return { ab, ba }
  }

  /** Deliver one frame of a wire (the oldest, or the one at `index`). */
  async deliver(wire: Wire, index = 0): Promise<void> {
    const [frame] = wire.frames.splice(index, 1)
    if (frame === undefined) throw new Error(`nothing to deliver from ${wire.from} to ${wire.to}`)
    const session = wire.session()
    session.receive(frame)
    await session.idle()
  }

  /** Deliver frames, wire by wire in order, until none is left (with a bound: a loop would never end). */
  async settle(maxFrames = 10_000): Promise<void> {
    for (let n = 0; n < maxFrames; n++) {
      await new Promise((resolve) => setImmediate(resolve))
      const wire = this.wires.find((w) => w.frames.length > 0)
      if (wire === undefined) return
      await this.deliver(wire)
    }
    throw new Error(`still frames in flight after ${maxFrames}: updates go round in a loop`)
  }
}

/** The live updates (SYNC frames of step UPDATE) among `frames`. */
function liveUpdates(frames: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const bytes of frames) {
    if (isUnitFrame(bytes) || isHistoryFrame(bytes)) continue
    const frame = decodeFrame(bytes)
    if (frame.type === FrameType.SYNC && frame.step === SyncStep.UPDATE) out.push(frame.payload)
  }
  return out
}

/** Record every frame a wire carries from now on, delivered or not. */
function tap(wire: Wire): Uint8Array[] {
  const seen: Uint8Array[] = []
  const push = wire.frames.push.bind(wire.frames)
  wire.frames.push = (...frames: Uint8Array[]) => {
    seen.push(...frames)
    return push(...frames)
  }
  return seen
}

/** A line A - B - C, connected and caught up, each holding collection 'notes'. */
async function line(): Promise<{ a: MemoryPeer; b: MemoryPeer; c: MemoryPeer; links: Links; ab: Wire; bc: Wire }> {
  const [a, b, c] = [new MemoryPeer('A'), new MemoryPeer('B'), new MemoryPeer('C')]
  for (const p of [a, b, c]) p.collection('notes')
  const links = new Links()
  const { ab } = links.connect(a, b)
  const { ab: bc } = links.connect(b, c)
  await links.settle()
  return { a, b, c, links, ab, bc }
}

describe('a peer passes updates on before processing them itself', () => {
  it("sends a peer's update on to the next peer before its own observers and listeners have run", async () => {
    const { a, b, c, links, ab, bc } = await line()
    const toC = tap(bc)
    const sentBeforeObservers: number[] = []
    // What B does with a change (the record index, change events; a device's derived rows and
    // write-ahead log) runs in observers and listeners: by the first of them, C has its frame.
    b.collection('notes').onChange(() => sentBeforeObservers.push(liveUpdates(toC).length))
    a.collection('notes').set('k1', { n: 1 }, 'local')
    await new Promise((resolve) => setImmediate(resolve))
    expect(liveUpdates(ab.frames)).toHaveLength(1)
    await links.deliver(ab)
    expect(sentBeforeObservers).toEqual([1])
    await links.settle()
    expect(c.collection('notes').get('k1')).toEqual({ n: 1 })
  })

  it('sends each update on once, with what the writer sent', async () => {
    const { a, c, links, ab, bc } = await line()
    const toC = tap(bc)
    for (let i = 0; i < 5; i++) {
      a.collection('notes').set(`k${i}`, { n: i }, 'local')
      await new Promise((resolve) => setImmediate(resolve))
    }
    const fromA = liveUpdates(ab.frames)
    expect(fromA).toHaveLength(5)
    await links.settle()
    // Not once before the observers and again from B's update event.
    expect(liveUpdates(toC)).toEqual(fromA)
    expect(Object.keys(c.collection('notes').entries()).sort()).toEqual(['k0', 'k1', 'k2', 'k3', 'k4'])
  })

  it('passes an update round a ring of peers once, and the ring settles', async () => {
    const [a, b, c] = [new MemoryPeer('A'), new MemoryPeer('B'), new MemoryPeer('C')]
    for (const p of [a, b, c]) p.collection('notes')
    const links = new Links()
    links.connect(a, b)
    links.connect(b, c)
    links.connect(c, a)
    await links.settle()
    const taps = links.wires.map((w) => tap(w))
    a.collection('notes').set('k', { n: 1 }, 'local')
    await links.settle()
    // A to B and C; B and C each on to the other (each got it from A first or from the other: new once).
    expect(taps.reduce((n, t) => n + liveUpdates(t).length, 0)).toBe(4)
    for (const p of [b, c]) expect(p.collection('notes').get('k')).toEqual({ n: 1 })
  })

  it('passes on what an update completes when it arrives after one that waited for it', async () => {
    const { a, b, c, links, ab } = await line()
    a.collection('notes').set('first', { n: 1 }, 'local')
    await new Promise((resolve) => setImmediate(resolve))
    a.collection('notes').set('first', { n: 2 }, 'local')
    await new Promise((resolve) => setImmediate(resolve))
    expect(liveUpdates(ab.frames)).toHaveLength(2)
    // The second update builds on the first: alone, B holds it as pending and passes nothing on.
    await links.deliver(ab, 1)
    expect(b.docs.get('notes')?.store.pendingStructs).not.toBeNull()
    await links.deliver(ab, 0)
    await links.settle()
    expect(c.collection('notes').get('first')).toEqual({ n: 2 })
  })
})

describe('applyPeerUpdate', () => {
  const origin = { session: 1 }

  it('passes on nothing and throws for an update that does not decode, and for one that changes nothing', () => {
    const source = new Y.Doc()
    const updates: Uint8Array[] = []
    source.on('update', (u: Uint8Array) => updates.push(u))
    source.getMap('m').set('k', 'v')
    const doc = new Y.Doc()
    const passed: Uint8Array[] = []
    const update = updates[0] as Uint8Array
    expect(() => applyPeerUpdate(doc, 'm', update.slice(0, update.byteLength - 3), origin, (u) => passed.push(u))).toThrow(/malformed update for m/)
    expect(passed).toHaveLength(0)
    expect(applyPeerUpdate(doc, 'm', update, origin, (u) => passed.push(u))).toBe(true)
    expect(passed).toEqual([update])
    expect(applyPeerUpdate(doc, 'm', update, origin, (u) => passed.push(u))).toBe(false)
    expect(passed).toHaveLength(1)
    expect(doc.getMap('m').get('k')).toBe('v')
  })
})

describe('UpdateOutbox.relay', () => {
  it('sends a relayed update at once, and merges the ones that follow in the same tick into one frame at its end', () => {
    const sent: Uint8Array[] = []
    const ticks: (() => void)[] = []
    const outbox = new UpdateOutbox({
      maxBufferedBytes: 1_000_000,
      schedule: (fn) => ticks.push(fn),
      bufferedBytes: () => 0,
      isReady: () => true,
      isClosed: () => false,
      shares: () => true,
      loadedDoc: () => undefined,
      send: (_collection, payload) => sent.push(payload),
      overflow: () => undefined,
      flushed: () => undefined,
    })
    const source = new Y.Doc()
    const updates: Uint8Array[] = []
    source.on('update', (u: Uint8Array) => updates.push(u))
    for (let i = 0; i < 4; i++) source.getMap('m').set(`k${i}`, i)
    for (const u of updates) outbox.relay('notes', u)
    expect(sent).toEqual([updates[0]])
    for (const tick of ticks.splice(0)) tick()
    // At most two frames a tick, as for local updates: peers relaying to one cannot add up past its frame rate.
    expect(sent).toHaveLength(2)
    const doc = new Y.Doc()
    for (const u of sent) Y.applyUpdate(doc, u)
    expect(doc.getMap('m').toJSON()).toEqual({ k0: 0, k1: 1, k2: 2, k3: 3 })
    // The next tick starts afresh: its first relayed update goes out at once.
    outbox.relay('notes', updates[3] as Uint8Array)
    expect(sent).toHaveLength(3)
  })
})
