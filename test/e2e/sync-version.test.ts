import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPeer } from '../../dist/index.js'
import { decodeToken, pairingProof, tokenId } from '../../dist/protocol/pair-token.js'
import { decodeFrame, FrameType } from '../../dist/protocol/sync-frames.js'

/**
 * Devices of sync 1 and sync 2 (docs/PROTOCOL.md, "Versions"): a real peer answers a dial of
 * /kitsync/sync/1.0.0 by a member with one ERROR frame VERSION_MISMATCH and closes the stream;
 * a stranger gets nothing. A real peer that opens a session with a device speaking only
 * 1.0.0 fails with VERSION_MISMATCH naming that device. A joiner that pairs the sync-1 way
 * (its join names no sync version) is refused with VERSION_MISMATCH and not admitted.
 */

type Peer = Awaited<ReturnType<typeof startPeer>>
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
const OLD_SYNC = '/kitsync/sync/1.0.0'
let dir: string
let peer: Peer
let member: Libp2p
let stranger: Libp2p

const node = async (privateKey?: Awaited<ReturnType<typeof generateKeyPair>>): Promise<Libp2p> =>
  createLibp2p({
    ...(privateKey === undefined ? {} : { privateKey }),
    addresses: { listen: LOOPBACK },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ks-sync-version-'))
  peer = await startPeer({ home: dir, listen: LOOPBACK, mdns: false, control: false })
  const privateKey = await generateKeyPair('Ed25519')
  await peer.workspace.addMember(peerIdFromPrivateKey(privateKey).toString(), { name: 'old device', addedBy: peer.deviceId, addedAt: Date.now() })
  member = await node(privateKey)
  stranger = await node()
})

afterAll(async () => {
  await member?.stop()
  await stranger?.stop()
  await peer?.stop()
  await rm(dir, { recursive: true, force: true })
})

/** Dial the old sync protocol; the frames read until the stream ended, and the error it ended with. */
async function dialOld(from: Libp2p): Promise<{ frames: ReturnType<typeof decodeFrame>[]; error: string }> {
  const stream = await from.dialProtocol(multiaddr(peer.mesh.listenAddresses()[0] as string), OLD_SYNC)
  const lp = lpStream(stream)
  const frames: ReturnType<typeof decodeFrame>[] = []
  const signal = AbortSignal.timeout(10_000)
  for (;;) {
    try {
      frames.push(decodeFrame((await lp.read({ signal })).subarray()))
    } catch (err) {
      // A clean close is UnexpectedEOFError; a reset, StreamResetError (never the timeout's AbortError).
      return { frames, error: (err as Error).name }
    }
  }
}

describe('sync protocol versions', () => {
  it('a member dialing /kitsync/sync/1.0.0 gets one ERROR frame VERSION_MISMATCH, then the stream ends', async () => {
    const { frames, error } = await dialOld(member)
    expect(frames).toEqual([{ type: FrameType.ERROR, code: 'VERSION_MISMATCH', message: 'this device speaks sync 2; update kitsync' }])
    expect(error).not.toBe('AbortError')
  })

  it('a stranger dialing /kitsync/sync/1.0.0 gets nothing', async () => {
    const { frames, error } = await dialOld(stranger)
    expect(frames).toEqual([])
    expect(error).not.toBe('AbortError')
  })

  it('opening a session with a device that speaks only 1.0.0 fails with VERSION_MISMATCH naming it', async () => {
    const oldKey = await generateKeyPair('Ed25519')
    const oldId = peerIdFromPrivateKey(oldKey).toString()
    const old = await node(oldKey)
    try {
      await old.handle(OLD_SYNC, (stream) => void stream.close())
      await peer.workspace.addMember(oldId, { name: 'old', addedBy: peer.deviceId, addedAt: Date.now() })
      await peer.mesh.dial(old.getMultiaddrs()[0]?.toString() as string)
      const err = (await peer.mesh.openSyncTo(oldId, 0).catch((e: unknown) => e)) as { code?: string; message?: string }
      expect(err.code).toBe('VERSION_MISMATCH')
      expect(err.message).toContain(oldId)
      expect(err.message).toContain('/kitsync/sync/2.0.0')
    } finally {
      await old.stop()
    }
  })

  it('a joiner that pairs the sync-1 way (no sync version in its join) is refused with VERSION_MISMATCH, not admitted', async () => {
    const invite = await peer.createInvite()
    const token = decodeToken(invite.token)
    const joinerKey = await generateKeyPair('Ed25519')
    const joinerId = peerIdFromPrivateKey(joinerKey).toString()
    const joiner = await node(joinerKey)
    try {
      const stream = await joiner.dialProtocol(multiaddr(peer.mesh.listenAddresses()[0] as string), '/kitsync/pair/1.0.0')
      const lp = lpStream(stream)
      const signal = AbortSignal.timeout(10_000)
      const send = (m: unknown): Promise<void> => lp.write(new TextEncoder().encode(JSON.stringify(m)), { signal })
      const read = async (): Promise<Record<string, unknown>> =>
        JSON.parse(new TextDecoder().decode((await lp.read({ signal })).subarray())) as Record<string, unknown>
      const id = tokenId(token.secret)
      await send({ t: 'join', tokenId: id, name: 'old', workspaceId: token.workspaceId })
      const challenge = await read()
      expect(challenge.t).toBe('challenge')
      await send({ t: 'proof', mac: pairingProof(token.secret, { tokenId: id, inviter: token.inviter, joiner: joinerId, nonce: challenge.nonce as string }) })
      expect(await read()).toEqual({ t: 'error', code: 'VERSION_MISMATCH', message: 'this device speaks sync 2; update kitsync' })
      expect(await peer.workspace.isMember(joinerId)).toBe(false)
    } finally {
      await joiner.stop()
    }
  })
})
