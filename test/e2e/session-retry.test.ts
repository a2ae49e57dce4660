import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it } from 'vitest'
import { Mesh } from '../../src/net/mesh.js'
import { MemoryPeer } from '../helpers/memory-mesh.js'

/**
 * A sync session refused on a connection that stays open (the other side had not heard of
 * this device yet) is opened again while the connection lasts: no disconnect comes to redial
 * after. Real libp2p (TCP, Noise, yamux) on loopback; the sync engines hold in-memory documents.
 */

const meshes: Mesh[] = []

afterEach(async () => {
  for (const m of meshes.splice(0)) await m.stop().catch(() => undefined)
})

async function mesh(isMember: (id: string) => Promise<boolean>): Promise<Mesh> {
  const m = await Mesh.create({
    privateKey: await generateKeyPair('Ed25519'),
    engine: new MemoryPeer('unused').engine,
    isMember,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    mdns: false,
  })
  meshes.push(m)
  await m.start()
  return m
}

/** Resolves with the peer id of the next 'connected' event, or rejects after `ms`. */
function nextConnected(m: Mesh, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`no sync session within ${ms} ms`))
    }, ms)
    const off = m.on('connected', ({ peerId }) => {
      clearTimeout(timer)
      off()
      resolve(peerId)
    })
  })
}

/** Resolves once `m` has had `count` refusals in all, or rejects after `ms`. */
function refusals(m: Mesh, count: number, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (m.refusedCount < count) return
      clearTimeout(timer)
      off()
      resolve()
    }
    const timer = setTimeout(() => {
      off()
      reject(new Error(`${m.refusedCount} refusals within ${ms} ms, expected ${count}`))
    }, ms)
    const off = m.on('refused', check)
    check()
  })
}

describe('sync session on a connection that outlives it', () => {
  it('is opened again once the peer that refused it accepts the device, without a reconnect', async () => {
    let bKnowsA = false
    const a = await mesh(async () => true)
    const b = await mesh(async (id) => id !== a.peerId || bKnowsA)
    await a.dial(b.listenAddresses()[0] as string)
    // A opens a session as soon as it is connected; B, which does not know A yet, refuses it.
    await refusals(b, 1, 10_000)
    expect(b.connectedPeers()).toEqual([])
    const connectionsBefore = a.node.getConnections().map((c) => c.id)
    // B learns of A without opening a session itself (as when its own attempt failed).
    const accepted = nextConnected(b, 10_000)
    bKnowsA = true
    expect(await accepted).toBe(a.peerId)
    expect(b.connectedPeers()).toEqual([a.peerId])
    // On the connection that was there all along.
    expect(a.node.getConnections().map((c) => c.id)).toEqual(connectionsBefore)
  })

  it('is tried again with backoff while refused, and no more once the peer is not a member', async () => {
    let aTrustsB = true
    const a = await mesh(async () => aTrustsB)
    const b = await mesh(async (id) => id !== a.peerId)
    await a.dial(b.listenAddresses()[0] as string)
    await refusals(b, 2, 10_000)
    // A no longer counts B as a member: the retry that is due finds nothing to do.
    aTrustsB = false
    await expect(refusals(b, 3, 4_000)).rejects.toThrow('2 refusals')
    expect(b.connectedPeers()).toEqual([])
  })
})
