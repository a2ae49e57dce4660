import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame, FrameType, SyncStep, type Frame } from '../../src/protocol/sync-frames.js'
import { MemoryNetwork, MemoryPeer, prng } from '../helpers/memory-mesh.js'
import * as Y from 'yjs'

/** Collections named by frames delivered from `from` to `to` (hello lists and SYNC frames). */
function named(net: MemoryNetwork, from: string, to: string): { hello: string[]; sync: string[]; dataFor: string[] } {
  const hello: string[] = []
  const sync: string[] = []
  const dataFor: string[] = []
  for (const d of net.delivered) {
    if (d.from !== from || d.to !== to) continue
    const f: Frame = decodeFrame(d.frame)
    if (f.type === FrameType.HELLO) hello.push(...f.collections)
    if (f.type === FrameType.SYNC) {
      sync.push(f.collection)
      if (f.step !== SyncStep.STEP1 && !(f.payload.byteLength === 2 && f.payload[0] === 0 && f.payload[1] === 0)) dataFor.push(f.collection)
    }
  }
  return { hello: [...new Set(hello)].sort(), sync: [...new Set(sync)].sort(), dataFor: [...new Set(dataFor)].sort() }
}

function fixture(seed: number): { net: MemoryNetwork; a: MemoryPeer; b: MemoryPeer } {
  const net = new MemoryNetwork(prng(seed))
  net.record = true
  const a = new MemoryPeer('a')
  const b = new MemoryPeer('b')
  a.collection('watchlists').set('tech', { symbols: ['AAPL'] }, 'local')
  a.collection('alerts').set('btc', { above: 100000 }, 'local')
  a.collection('journal').set('d1', 'bought', 'local')
  return { net, a, b }
}

describe('selective sync in the engine', () => {
  it('a selective peer is never sent a frame about a collection outside its interest, not even live updates', async () => {
    const { net, a, b } = fixture(11)
    await b.select({ items: ['watchlists'] })
    net.connect(a, b)
    await net.settle()
    a.collection('alerts').set('eth', { above: 5000 }, 'local')
    a.collection('watchlists').set('energy', { symbols: ['XOM'] }, 'local')
    await net.settle()
    expect(named(net, 'a', 'b').sync).toEqual(['watchlists'])
    expect(named(net, 'a', 'b').hello).toEqual(['alerts', 'journal', 'watchlists']) // names only, no data
    expect(b.snapshot()).toEqual({ watchlists: { tech: { symbols: ['AAPL'] }, energy: { symbols: ['XOM'] } } })
    // and B's writes still reach A
    b.collection('watchlists').set('b-side', 1, 'local')
    await net.settle()
    expect(a.collection('watchlists').get('b-side')).toBe(1)
  })

  it('widening the interest at run time pulls the new collections; narrowing stops them', async () => {
    const { net, a, b } = fixture(12)
    await b.select({ items: ['watchlists'] })
    net.connect(a, b)
    await net.settle()
    expect(b.docs.has('alerts')).toBe(false)
    await b.select({ items: ['watchlists', 'alert*'] })
    await net.settle()
    expect(b.collection('alerts').entries()).toEqual({ btc: { above: 100000 } })
    expect(b.docs.has('journal')).toBe(false)
    await b.select({ items: ['watchlists'] })
    await net.settle()
    const before = named(net, 'a', 'b')
    net.delivered.length = 0
    a.collection('alerts').set('later', 1, 'local')
    await net.settle()
    expect(before.dataFor).toContain('alerts')
    expect(named(net, 'a', 'b').sync).toEqual([])
    expect(b.collection('alerts').get('later')).toBeUndefined()
  })

  it('a peer whose own items widen is sent what it now wants (the other side starts the exchange)', async () => {
    const { net, a, b } = fixture(13)
    await a.select({ items: ['watchlists'] }) // A syncs only watchlists; B everything
    b.collection('journal').set('from-b', 2, 'local')
    net.connect(a, b)
    await net.settle()
    expect(a.collection('journal').get('from-b')).toBeUndefined()
    expect(named(net, 'b', 'a').dataFor).toEqual([])
    await a.select({ items: ['watchlists', 'journal'] })
    await net.settle()
    expect(a.collection('journal').entries()).toEqual({ d1: 'bought', 'from-b': 2 })
    expect(b.collection('journal').entries()).toEqual({ d1: 'bought', 'from-b': 2 })
  })

  it('local-only collections are never named nor sent, either way', async () => {
    const { net, a, b } = fixture(14)
    await a.select({ localOnly: ['scratch*'] })
    a.collection('scratchpad').set('secret', 'a-only', 'local')
    b.collection('scratchpad').set('other', 'b-only', 'local')
    net.connect(a, b)
    await net.settle()
    a.collection('scratchpad').set('later', 'still a-only', 'local')
    b.collection('scratchpad').set('later-b', 'still b-only', 'local')
    await net.settle()
    expect(named(net, 'a', 'b').hello).not.toContain('scratchpad')
    expect(named(net, 'a', 'b').sync).not.toContain('scratchpad')
    expect(named(net, 'b', 'a').sync).not.toContain('scratchpad')
    expect(a.collection('scratchpad').entries()).toEqual({ secret: 'a-only', later: 'still a-only' })
    expect(b.collection('scratchpad').entries()).toEqual({ other: 'b-only', 'later-b': 'still b-only' })
    expect(b.collection('journal').get('d1')).toBe('bought')
  })

  it('on-demand collections are not pulled by default; asking by name pulls one and the exchange reports when done', async () => {
    const { net, a, b } = fixture(15)
    await a.select({}) // A drew on two charts: it holds them, so it serves them
    a.collection('drawings.AAPL-1D').set('line1', { x: 1 }, 'local')
    a.collection('drawings.MSFT-1D').set('line2', { x: 2 }, 'local')
    await b.select({})
    net.connect(a, b)
    await net.settle()
    expect([...b.docs.keys()].sort()).toEqual(['alerts', 'journal', 'watchlists'])
    expect(named(net, 'a', 'b').sync.filter((n) => n.startsWith('drawings.'))).toEqual([])
    await b.select({ items: ['*', 'drawings.AAPL-1D'] })
    const session = net.links.get('a|b')?.b
    const round = session?.resync(['drawings.AAPL-1D'])
    await net.settle()
    expect(await round).toEqual({ complete: true, collections: 1, collectionsDone: 1 })
    expect(b.collection('drawings.AAPL-1D').entries()).toEqual({ line1: { x: 1 } })
    expect(b.docs.has('drawings.MSFT-1D')).toBe(false)
    // now held: B's own edits to it go back to A
    b.collection('drawings.AAPL-1D').set('line3', { x: 3 }, 'local')
    await net.settle()
    expect(a.collection('drawings.AAPL-1D').get('line3')).toEqual({ x: 3 })
  })

  it('drops updates a peer sends for a collection this device does not sync, without creating it, and counts them', async () => {
    const { net, a, b } = fixture(16)
    await b.select({ items: ['watchlists'] })
    net.connect(a, b)
    await net.settle()
    const session = net.links.get('a|b')?.b
    const doc = new Y.Doc()
    doc.getMap('x').set('k', 1)
    session?.receive(encodeFrame({ type: FrameType.SYNC, collection: 'alerts', step: SyncStep.UPDATE, payload: Y.encodeStateAsUpdate(doc) }))
    await session?.idle()
    expect(b.docs.has('alerts')).toBe(false)
    const stats = b.engine.stats.snapshot()
    expect(stats.peers.a?.updatesDropped).toBe(1)
    expect(stats.collections.alerts?.updatesDropped).toBe(1)
    expect(stats.collections.watchlists?.updatesApplied).toBeGreaterThan(0)
    expect(stats.collections.journal).toBeUndefined()
  })

  it('a device relays only what it holds: A - B - C with B not syncing alerts', async () => {
    const net = new MemoryNetwork(prng(18))
    net.record = true
    const [a, b, c] = ['a', 'b', 'c'].map((id) => new MemoryPeer(id)) as [MemoryPeer, MemoryPeer, MemoryPeer]
    await b.select({ items: ['watchlists'] })
    net.connect(a, b)
    net.connect(b, c)
    a.collection('alerts').set('x', 1, 'local')
    a.collection('watchlists').set('w', 1, 'local')
    await net.settle()
    expect(c.collection('watchlists').get('w')).toBe(1)
    expect(c.docs.has('alerts')).toBe(false)
    expect(named(net, 'b', 'c').sync).not.toContain('alerts')
  })

  it('emits progress while catching up, ending at every collection done; counts syncs, bytes and updates', async () => {
    const net = new MemoryNetwork(prng(17))
    const a = new MemoryPeer('a')
    const b = new MemoryPeer('b')
    for (let i = 0; i < 30; i++) a.collection(`c${i}`).set('k', i, 'local')
    const progress: { collectionsDone: number; collectionsTotal: number; bytesIn: number }[] = []
    b.engine.on('progress', (e) => {
      if (e.peerId === 'a') progress.push(e)
    })
    net.connect(a, b)
    await net.settle()
    expect(progress.length).toBeGreaterThanOrEqual(2)
    expect(progress[0]?.collectionsDone).toBe(0)
    expect(progress.at(-1)).toMatchObject({ collectionsDone: 30, collectionsTotal: 30 })
    expect(progress.at(-1)?.bytesIn).toBeGreaterThan(0)
    for (let i = 1; i < progress.length; i++) expect(progress[i]?.collectionsDone).toBeGreaterThanOrEqual(progress[i - 1]?.collectionsDone ?? 0)
    const s = b.engine.stats.snapshot()
    expect(s.peers.a).toMatchObject({ sessions: 1, syncs: 1, updatesApplied: 30 })
    expect(s.peers.a?.bytesIn).toBe(net.links.get('a|b')?.b.getStats().bytesIn)
    expect(s.totals.updatesApplied).toBe(30)
    // a second exchange with nothing new applies nothing but counts one more sync
    const round = net.links.get('a|b')?.b.resync()
    await net.settle()
    expect((await round)?.complete).toBe(true)
    expect(b.engine.stats.snapshot().peers.a).toMatchObject({ syncs: 2, updatesApplied: 30 })
  })
})
