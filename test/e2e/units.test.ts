import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { encodeFrame, FrameType, SYNC_PROTOCOL_ID, SYNC_PROTOCOL_VERSION } from '../../dist/protocol/sync-frames.js'
import { encodeUnitFrame, UnitFrameType } from '../../dist/protocol/unit-frames.js'
import type { UnitRemoteUpdate } from '../../dist/core/unit-types.js'
import { makeHome, waitUntil } from '../helpers/cli.js'
import { loopbackPeers, type Peer } from '../helpers/loopback-peers.js'

/**
 * Units (core/unit-types.ts) and blobs between two real peers over libp2p on loopback, each with
 * its LevelDB: live edits, catch-up after one side was offline (only the units that differ are
 * asked for), blobs fetched from a peer, and nothing for a device that is not paired.
 */

const peers = loopbackPeers()
const C = '_folder.docs'
const WAIT = 20_000

/** A unit id as the folder layer makes them (22 base64url characters). */
const unitId = (i: number): string => `file${String(i).padStart(18, '0')}`

/** Edit a unit's text on a device and commit it with its manifest record. */
async function edit(peer: Peer, unit: string, text: string, collection = C): Promise<void> {
  const units = peer.workspace.units
  const doc = await units.open(collection, unit, () => new Y.Doc())
  const updates: Uint8Array[] = []
  const take = (u: Uint8Array): number => updates.push(u)
  doc.on('update', take)
  const t = doc.getText('text')
  doc.transact(() => {
    t.delete(0, t.length)
    t.insert(0, text)
  })
  doc.off('update', take)
  await units.commit(
    collection,
    updates.map((update) => ({ unit, update })),
    [{ key: unit, fields: { path: `${unit}.txt`, kind: 'text' } }],
  )
}

/** The text of a unit as a device's store holds it (a fresh load, not the open document). */
async function storedText(peer: Peer, unit: string, collection = C): Promise<string> {
  peer.workspace.units.close(collection, unit)
  const doc = await peer.workspace.units.open(collection, unit, () => new Y.Doc())
  peer.workspace.units.close(collection, unit)
  return doc.getText('text').toString()
}

async function pair(): Promise<{ a: Peer; b: Peer; bHome: string }> {
  const a = await peers.start()
  const bHome = await makeHome()
  const b = await peers.start(bHome)
  const invite = await a.createInvite()
  expect((await b.join(invite.token, 'b')).caughtUp).toBe(true)
  return { a, b, bHome }
}

describe('units between two peers', () => {
  it('a unit edited on one device reaches the open document and the store of the other', async () => {
    const { a, b } = await pair()
    const unit = unitId(1)
    const onB = await b.workspace.units.open(C, unit, () => new Y.Doc())
    const seen: UnitRemoteUpdate[] = []
    b.workspace.units.on('unit:update', (e) => seen.push(e))
    await edit(a, unit, 'hello from a\n')
    await waitUntil(async () => (onB.getText('text').toString() === 'hello from a\n' ? true : undefined), WAIT, 'the edit on the open document of b')
    // Applied to the open document first, then stored, then announced: the store is read after the event.
    await waitUntil(async () => (seen.length > 0 ? true : undefined), WAIT, 'unit:update on b')
    expect(seen.map((e) => [e.collection, e.unit, e.from])).toEqual([[C, unit, a.deviceId]])
    expect(await storedText(b, unit)).toBe('hello from a\n')
    expect(await b.workspace.units.list(C)).toEqual([unit])
    // The manifest record went with it (the collection's own sync).
    await waitUntil(async () => ((await recordOf(b, unit)) !== undefined ? true : undefined), WAIT, 'the manifest record on b')
    expect(await recordOf(b, unit)).toEqual({ path: `${unit}.txt`, kind: 'text' })
    // And back: an edit on b reaches a's store (a has the unit closed).
    const onBText = onB.getText('text')
    const updates: Uint8Array[] = []
    onB.on('update', (u: Uint8Array, origin: unknown) => {
      if (origin === 'local-edit') updates.push(u)
    })
    onB.transact(() => onBText.insert(onBText.length, 'and from b\n'), 'local-edit')
    await b.workspace.units.commit(C, [{ unit, update: updates[0] as Uint8Array }])
    await waitUntil(async () => ((await storedText(a, unit)) === 'hello from a\nand from b\n' ? true : undefined), WAIT, 'the edit of b in the store of a')
  })

  it('a collection both devices create mid-session (records first, at once): its first units reach the other side', async () => {
    const { a, b } = await pair()
    const D = '_folder.late'
    // As `folder add` on each side at once: a commit of manifest records only creates the collection, then the first units.
    await Promise.all(
      [a, b].map(async (p, i) => {
        await p.workspace.units.commit(D, [], [{ key: 'root', fields: { kind: 'folder', device: i } }])
        await edit(p, unitId(1 + i), `first unit of ${'ab'[i]}\n`, D)
      }),
    )
    await waitUntil(async () => ((await storedText(b, unitId(1), D)) === 'first unit of a\n' ? true : undefined), WAIT, 'the unit of a on b')
    await waitUntil(async () => ((await storedText(a, unitId(2), D)) === 'first unit of b\n' ? true : undefined), WAIT, 'the unit of b on a')
  })

  it('units committed on both sides while a session starts reach the other side', async () => {
    const { a, bHome, b } = await pair()
    await edit(a, unitId(0), 'before\n')
    await waitUntil(async () => ((await b.workspace.units.list(C)).length === 1 ? true : undefined), WAIT, 'the first unit on b')
    await peers.stop(b)
    // a commits one unit after another while b starts and its session opens, until that session is ready and a bit beyond.
    let n = 0
    const onA = (async () => {
      let readyFor = 0
      while (readyFor < 20) {
        n++
        await edit(a, unitId(1000 + n), `a ${n}\n`)
        if (a.engine.sessions().some((s) => s.isReady)) readyFor++
      }
    })()
    const b2 = await peers.start(bHome)
    // As the folder engine at start: b commits at once, before its sessions are ready.
    const onB: string[] = []
    for (let i = 0; i < 20; i++) {
      onB.push(unitId(2000 + i))
      await edit(b2, unitId(2000 + i), `b ${i}\n`)
    }
    await onA
    const fromA = Array.from({ length: n }, (_, i) => unitId(1001 + i))
    const has = async (p: Peer, want: string[]): Promise<true | undefined> => {
      const held = new Set(await p.workspace.units.list(C))
      return want.every((u) => held.has(u)) ? true : undefined
    }
    await waitUntil(() => has(b2, fromA), WAIT, `the ${n} units of a on b`)
    await waitUntil(() => has(a, onB), WAIT, 'the 20 units of b on a')
  })

  it('after being offline, a device asks for exactly the units that changed', async () => {
    const { a, b, bHome } = await pair()
    const N = 200
    for (let i = 0; i < N; i++) await edit(a, unitId(i), `unit ${i}\n`)
    await waitUntil(async () => ((await b.workspace.units.list(C)).length === N ? true : undefined), WAIT, `${N} units on b`)
    await peers.stop(b)
    const changed = [unitId(7), unitId(99), unitId(180)]
    for (const unit of changed) await edit(a, unit, `${unit} changed while b was away\n`)

    const b2 = await peers.start(bHome)
    const wanted: string[] = []
    b2.engine.on('units-wanted', (e) => {
      if (e.collection === C) wanted.push(...e.units)
    })
    const wantedByA: string[] = []
    a.engine.on('units-wanted', (e) => {
      if (e.peerId === b2.deviceId) wantedByA.push(...e.units)
    })
    expect(await b2.syncWith(a.deviceId, WAIT)).toBe(true)
    for (const unit of changed) {
      await waitUntil(async () => ((await storedText(b2, unit)) === `${unit} changed while b was away\n` ? true : undefined), WAIT, `${unit} on b`)
    }
    expect(wanted.sort()).toEqual([...changed].sort())
    // a has nothing new from b: it asked for the same three (their digests differ), nothing else.
    expect(wantedByA.sort()).toEqual([...changed].sort())
    const session = b2.engine.sessionsWith(a.deviceId)[0]
    expect(session?.units.counters.wanted).toBe(3)
    // Sums (1 KiB), the lists of the three buckets that differ, three WANTs and their answers.
    expect(session?.units.counters.bytesIn).toBeLessThan(4_000)
    expect(await storedText(b2, unitId(8))).toBe(`unit 8\n`)
  })

  it('a blob put on one device is fetched from it by the other', async () => {
    const { a, b } = await pair()
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 7919) % 251)
    const hash = createHash('sha256').update(bytes).digest('hex')
    await a.workspace.units.putBlob(hash, bytes)
    const stored: { hash: string; size: number }[] = []
    b.workspace.units.on('blob:stored', (e) => stored.push(e))
    const got = await b.workspace.units.getBlob(hash)
    expect(got && Buffer.from(got).equals(Buffer.from(bytes))).toBe(true)
    expect(stored).toEqual([{ hash, size: bytes.byteLength }])
    // Stored on b now: a second get is answered locally.
    await peers.stop(a)
    expect(Buffer.from((await b.workspace.units.getBlob(hash)) as Uint8Array).equals(Buffer.from(bytes))).toBe(true)
    // A blob no one has: undefined once the peers said so (none connected now).
    expect(await b.workspace.units.getBlob('0'.repeat(64))).toBeUndefined()
    await expect(b.workspace.units.putBlob(hash.replace(/^./, hash[0] === '0' ? '1' : '0'), bytes)).rejects.toMatchObject({ code: 'DATA_CORRUPTION' })
  })

  it('an untrusted member (a VPS) gets no unit and no blob; a local-only collection keeps its units home', async () => {
    const a = await peers.start()
    const v = await peers.start()
    const vInvite = await a.createInvite(undefined, { untrusted: true })
    expect((await v.join(vInvite.token, 'vps')).caughtUp).toBe(true)
    const bHome = await makeHome()
    const b = await peers.start(bHome)
    await b.workspace.setItems({ localOnly: { add: ['drafts'] } })
    const bInvite = await a.createInvite()
    expect((await b.join(bInvite.token, 'b')).caughtUp).toBe(true)
    const bytes = new TextEncoder().encode('a private blob')
    const hash = createHash('sha256').update(bytes).digest('hex')
    await a.workspace.units.putBlob(hash, bytes)
    // Units of an internal collection and of an app collection b keeps local-only.
    await edit(a, unitId(1), 'folder text\n')
    const drafts = await a.workspace.units.open('drafts', unitId(2), () => new Y.Doc())
    let update: Uint8Array | undefined
    drafts.on('update', (u: Uint8Array) => (update = u))
    drafts.getText('text').insert(0, 'a draft')
    await a.workspace.units.commit('drafts', [{ unit: unitId(2), update: update as Uint8Array }], [{ key: unitId(2), fields: { title: 'draft' } }])
    // b (trusted) gets the folder's unit: the flush point for what goes out to everyone.
    await waitUntil(async () => ((await b.workspace.units.list(C)).length === 1 ? true : undefined), WAIT, 'the folder unit on b')
    await b.syncWith(a.deviceId, WAIT)
    await v.syncWith(a.deviceId, WAIT)
    expect(await b.workspace.units.list('drafts')).toEqual([])
    expect(await v.workspace.units.list(C)).toEqual([])
    expect(await v.workspace.units.list('drafts')).toEqual([])
    // The VPS asks for the blob: a has it, and answers that it has none for it.
    expect(await v.workspace.units.getBlob(hash)).toBeUndefined()
    const session = v.engine.sessionsWith(a.deviceId)[0]
    expect(session?.units.counters.wanted).toBe(0)
    expect(await b.workspace.units.getBlob(hash)).toEqual(bytes)
  })

  it('a device that is not paired gets no unit and no blob: it receives no byte', async () => {
    const a = await peers.start()
    await edit(a, unitId(1), 'secret text\n')
    const bytes = new TextEncoder().encode('secret blob')
    const hash = createHash('sha256').update(bytes).digest('hex')
    await a.workspace.units.putBlob(hash, bytes)
    const stranger = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    const received: number[] = []
    try {
      const addr = a.mesh.listenAddresses().find((x) => x.includes('127.0.0.1')) as string
      try {
        const stream = await stranger.dialProtocol(multiaddr(addr), SYNC_PROTOCOL_ID)
        const lp = lpStream(stream)
        const workspaceId = (await a.workspace.info()).workspaceId
        for (const frame of [
          encodeFrame({ type: FrameType.HELLO, version: SYNC_PROTOCOL_VERSION, workspaceId, collections: [C] }),
          encodeUnitFrame({ type: UnitFrameType.UNIT_WANT, collection: C, wants: [{ unit: unitId(1), vector: new Uint8Array([0]) }] }),
          encodeUnitFrame({ type: UnitFrameType.BLOB_WANT, hash }),
        ])
          await lp.write(frame).catch(() => undefined)
        for await (const chunk of stream) received.push(chunk.byteLength)
      } catch {
        // refused: what counts is that nothing came back
      }
    } finally {
      await stranger.stop()
    }
    expect(received).toEqual([])
  })
})

/** A manifest record of the folder collection on a device. */
async function recordOf(peer: Peer, key: string): Promise<unknown> {
  const registry = (peer.workspace as unknown as { registry: { load(n: string): Promise<{ collection: { get(k: string): unknown } }> } }).registry
  return (await registry.load(C)).collection.get(key)
}
