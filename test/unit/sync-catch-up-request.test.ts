import { describe, expect, it } from 'vitest'
import { decodeFrame, FrameType, SyncStep } from '../../src/protocol/sync-frames.js'
import { isUnitFrame } from '../../src/protocol/unit-frames.js'
import { isHistoryFrame } from '../../src/sync/history-exchange.js'
import { MemoryNetwork, MemoryPeer, prng } from '../helpers/memory-mesh.js'

/**
 * A device asks a peer for each collection with its state vector. A peer that does not have the
 * collection (it did not name it in its hello: a device that just joined) answers an empty
 * vector with nothing either way, so the device asks with an empty vector and does not load
 * the document first: a host whose 10 MiB collection was dropped from memory while idle took
 * some 200 ms to load it, and the joiner's own request, handled after the hello, waited that long.
 */

describe('asking a peer that lacks a collection', () => {
  it('sends an empty state vector without loading the document, and the peer still gets the collection', async () => {
    const host = new MemoryPeer('H', 'ws', { stores: true })
    for (let i = 0; i < 3; i++) host.collection('big').set(`k${i}`, { i }, 'local')
    // Dropped from memory while idle (daemon/idle-docs.ts): held in the store only.
    host.docs.get('big')?.destroy()
    host.docs.delete('big')
    host.collections.delete('big')
    host.collectionNames = () => ['big']
    const loads: string[] = []
    const openDoc = host.openDoc.bind(host)
    host.openDoc = (name: string) => {
      loads.push(name)
      return openDoc(name)
    }
    const joiner = new MemoryPeer('J', 'ws', { adopts: true })
    const net = new MemoryNetwork(prng(1))
    net.record = true
    net.connect(host, joiner)
    await net.settle()

    expect(joiner.collection('big').entries()).toEqual({ k0: { i: 0 }, k1: { i: 1 }, k2: { i: 2 } })
    const asked = net.delivered
      .filter((d) => d.from === 'H' && !isUnitFrame(d.frame) && !isHistoryFrame(d.frame))
      .map((d) => decodeFrame(d.frame))
      .filter((f) => f.type === FrameType.SYNC && f.collection === 'big' && f.step === SyncStep.STEP1)
    expect(asked).toHaveLength(1)
    expect(asked[0]?.type === FrameType.SYNC ? [...asked[0].payload] : undefined).toEqual([0])
    // Answered from the stored updates, asked with an empty vector, the peer's empty answer not applied: never loaded.
    expect(loads).not.toContain('big')
  })
})
