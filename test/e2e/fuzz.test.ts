import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import * as encoding from 'lib0/encoding'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { startPeer } from '../../dist/index.js'
import { encodeFrame, FrameType, SYNC_PROTOCOL_ID, SYNC_PROTOCOL_VERSION } from '../../dist/protocol/sync-frames.js'
import { prng, waitUntil } from '../helpers/cli.js'
import { collectGarbage } from '../helpers/gc.js'

/**
 * Hostile input at a running peer (real libp2p over TCP, real LevelDB), from a device that is
 * a member, so the frames get past the membership gate and reach the parser.
 */

type Peer = Awaited<ReturnType<typeof startPeer>>
const dirs: string[] = []
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function home(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ks-fuzz-'))
  dirs.push(d)
  return d
}

async function memberNode(target: Peer): Promise<Libp2p> {
  const privateKey = await generateKeyPair('Ed25519')
  await target.workspace.addMember(peerIdFromPrivateKey(privateKey).toString(), { name: 'fuzzer', addedBy: target.deviceId, addedAt: Date.now() })
  return createLibp2p({ privateKey, addresses: { listen: LOOPBACK }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
}

/** Length-prefix a frame body the way lpStream does (unsigned varint + bytes). */
function lp(body: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint8Array(e, body)
  return encoding.toUint8Array(e)
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

describe('hostile input', () => {
  it('survives 100,000 random and mutated frames: no crash, bounded memory, data unchanged, honest peers still sync', async () => {
    const rand = prng(Number(process.env.KITSYNC_TEST_SEED ?? 4242))
    // Limits raised so the frames reach the parser; the rate limit has its own test below.
    const a = await startPeer({ home: await home(), listen: LOOPBACK, mdns: false, control: false, syncLimits: { framesPerSecond: 1e9, frameBurst: 1e9 } })
    const b = await startPeer({ home: await home(), listen: LOOPBACK, mdns: false, control: false })
    const fuzzer = await memberNode(a)
    try {
      await b.join((await a.createInvite()).token, 'honest')
      await a.workspace.set('orders', 'p1', { qty: 10 })
      await a.workspace.set('pins', 'a1', { above: 100 })
      const workspaceId = a.workspace.workspaceId
      const before = (await a.workspace.export()).collections
      const realUpdate = Y.encodeStateAsUpdate(await a.workspace.openDoc('orders'))
      const valid: Uint8Array[] = [
        encodeFrame({ type: FrameType.HELLO, version: SYNC_PROTOCOL_VERSION, workspaceId, collections: ['orders', 'nope'] }),
        encodeFrame({ type: FrameType.SYNC, collection: 'orders', step: 0, payload: Y.encodeStateVector(new Y.Doc()) }),
        encodeFrame({ type: FrameType.SYNC, collection: 'orders', step: 2, payload: realUpdate }),
      ]
      const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rand.next() * 256))
      const frame = (): Uint8Array => {
        const kind = rand.int(0, 6)
        if (kind === 0) return lp(randomBytes(rand.int(0, 64)))
        if (kind === 1) {
          // a valid frame with bytes flipped
          const f = (valid[rand.int(0, valid.length - 1)] as Uint8Array).slice()
          for (let i = 0; i < rand.int(1, 4); i++) f[rand.int(0, f.length - 1)] = rand.int(0, 255)
          return lp(f)
        }
        if (kind === 2) {
          // a valid prefix followed by garbage
          const f = valid[rand.int(0, valid.length - 1)] as Uint8Array
          return lp(concat([f.subarray(0, rand.int(1, f.length)), randomBytes(rand.int(1, 32))]))
        }
        if (kind === 3) {
          // a truncated y-protocols update
          return lp(encodeFrame({ type: FrameType.SYNC, collection: 'orders', step: 2, payload: realUpdate.subarray(0, rand.int(1, realUpdate.length - 1)) }))
        }
        if (kind === 4) {
          // a state-vector request for a collection nobody has
          return lp(encodeFrame({ type: FrameType.SYNC, collection: `c${rand.int(0, 1e9)}`, step: 0, payload: new Uint8Array([0]) }))
        }
        if (kind === 5) return lp(valid[rand.int(0, 1)] as Uint8Array)
        // a length prefix of ~2 GiB with a little data behind it
        return concat([new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x07]), randomBytes(16)])
      }
      collectGarbage()
      const before0 = process.memoryUsage()
      let sent = 0
      let streams = 0
      let refusedStreams = 0
      const addr = multiaddr(a.mesh.listenAddresses()[0] as string)
      // Harmless but well-formed frames a member may send: state-vector requests, updates the
      // peer already has, empty answers for collections nobody has.
      const harmless = (): Uint8Array => {
        const kind = rand.int(0, 3)
        if (kind === 0) return lp(valid[1] as Uint8Array)
        if (kind === 1) return lp(valid[2] as Uint8Array)
        if (kind === 2) return lp(encodeFrame({ type: FrameType.SYNC, collection: `c${rand.int(0, 1e9)}`, step: 1, payload: new Uint8Array([0, 0]) }))
        return lp(encodeFrame({ type: FrameType.SYNC, collection: `c${rand.int(0, 1e9)}`, step: 0, payload: new Uint8Array([0]) }))
      }
      // Each stream: a hello, then well-formed and hostile frames mixed; a stream ends at its
      // first hostile frame (the peer resets it), so every stream closes with one.
      while (sent < 100_000) {
        const batch: Uint8Array[] = [lp(valid[0] as Uint8Array)]
        for (let i = 0; i < 18; i++) batch.push(rand.next() < 0.05 ? frame() : harmless())
        batch.push(frame())
        sent += batch.length
        streams++
        try {
          const stream = await fuzzer.dialProtocol(addr, SYNC_PROTOCOL_ID)
          stream.send(concat(batch))
          await stream.close().catch(() => undefined)
        } catch {
          // the peer refused the stream (too many open) or reset it already: that is its job
          refusedStreams++
        }
      }
      // What the frames left behind: the heap and buffers still held after a full collection.
      // (RSS growth says more about the GC than about retention: 115 MiB on Node 20 and 222 MiB
      // on Node 24 in one CI run, for the same retained heap.)
      // Once the peer has closed every stream of the fuzzer's (a stream's close is asynchronous).
      await waitUntil(async () => (fuzzer.getConnections().every((c) => c.streams.length === 0) ? true : undefined), 30_000, 'the fuzzer streams closed')
      collectGarbage()
      const after = process.memoryUsage()
      const MiB = 1048576
      const retained = {
        heap: (after.heapUsed - before0.heapUsed) / MiB,
        buffers: (after.arrayBuffers - before0.arrayBuffers) / MiB,
        rss: (after.rss - before0.rss) / MiB,
      }
      expect(sent).toBeGreaterThanOrEqual(100_000)
      expect(streams).toBe(5000)
      // The frames reached the parser: each stream's frames are read until the first bad one.
      console.log(
        `fuzz: ${sent} frames sent on ${streams} streams (${refusedStreams} refused at opening); the peer parsed ${a.engine.totals.framesIn}, closed ${a.engine.totals.sessionsFailed} sessions with an error; retained ${retained.heap.toFixed(1)} MiB of heap and ${retained.buffers.toFixed(1)} MiB of buffers (RSS grew ${retained.rss.toFixed(1)} MiB)`,
      )
      expect(a.engine.totals.framesIn).toBeGreaterThan(50_000)
      expect(a.engine.totals.sessionsFailed).toBeGreaterThan(300)
      // Bounded: the frames leave nothing behind (no empty collections, no buffers).
      // Seen here: 7-8 or 39-41 MiB (either, on Node 20 and 24); 64 MiB is 700 bytes for each
      // frame the peer parsed.
      expect(retained.heap).toBeLessThan(64)
      expect(retained.buffers).toBeLessThan(8)
      expect((await a.workspace.export()).collections).toEqual(before)
      expect(a.workspace.appCollectionNames()).toEqual(['orders', 'pins'])
      // The peer still serves an honest member.
      await b.workspace.set('journal', 'after-fuzz', { ok: true })
      await waitUntil(
        async () => ((await a.workspace.get('journal', 'after-fuzz').catch(() => undefined)) === undefined ? undefined : true),
        20_000,
        'A to get B\u2019s write',
      )
      const log = await a.workspace.log()
      expect(log.some((e) => e.type === 'sync-error' && e.reason.startsWith('PROTOCOL_ERROR'))).toBe(true)
    } finally {
      await fuzzer.stop()
      await b.stop()
      await a.stop()
    }
  })

  it('drops a member that floods frames with RATE_LIMITED and keeps serving others', async () => {
    const a = await startPeer({ home: await home(), listen: LOOPBACK, mdns: false, control: false, syncLimits: { framesPerSecond: 100, frameBurst: 500 } })
    const fuzzer = await memberNode(a)
    try {
      await a.workspace.set('orders', 'p1', { qty: 10 })
      const stream = await fuzzer.dialProtocol(multiaddr(a.mesh.listenAddresses()[0] as string), SYNC_PROTOCOL_ID)
      const request = lp(encodeFrame({ type: FrameType.SYNC, collection: 'orders', step: 0, payload: new Uint8Array([0]) }))
      const hello = lp(encodeFrame({ type: FrameType.HELLO, version: SYNC_PROTOCOL_VERSION, workspaceId: a.workspace.workspaceId, collections: [] }))
      stream.send(concat([hello, ...Array.from({ length: 2000 }, () => request)]))
      await waitUntil(
        async () => ((await a.workspace.log()).some((e) => e.type === 'sync-error' && e.reason.startsWith('RATE_LIMITED')) ? true : undefined),
        20_000,
        'a RATE_LIMITED entry in the audit log',
      )
      await waitUntil(async () => (a.mesh.connectedPeers().includes(fuzzer.peerId.toString()) ? undefined : true), 5_000, 'A to drop the flooding peer')
      await a.workspace.set('orders', 'p2', { qty: 1 })
      expect(await a.workspace.get('orders', 'p2')).toEqual({ qty: 1 })
    } finally {
      await fuzzer.stop()
      await a.stop()
    }
  })
})
