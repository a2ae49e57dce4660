import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPeer } from '../../dist/index.js'
import { encodeFrame, FrameType, SYNC_PROTOCOL_ID, SYNC_PROTOCOL_VERSION } from '../../dist/protocol/sync-frames.js'

/**
 * What a peer does with a sync frame it will not take (docs/PROTOCOL.md, Framing and Limits):
 * a length prefix over 64 MiB resets the stream without reading the body and without an ERROR
 * frame; a body that does not decode gets ERROR, then the stream ends.
 */

type Peer = Awaited<ReturnType<typeof startPeer>>
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
let dir: string
let peer: Peer
let member: Libp2p

const lp = (body: Uint8Array): Uint8Array => {
  const e = encoding.createEncoder()
  encoding.writeVarUint8Array(e, body)
  return encoding.toUint8Array(e)
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ks-frame-limit-'))
  peer = await startPeer({ home: dir, listen: LOOPBACK, mdns: false, control: false })
  const privateKey = await generateKeyPair('Ed25519')
  await peer.workspace.addMember(peerIdFromPrivateKey(privateKey).toString(), { name: 'member', addedBy: peer.deviceId, addedAt: Date.now() })
  member = await createLibp2p({ privateKey, addresses: { listen: LOOPBACK }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
})

afterAll(async () => {
  await member?.stop()
  await peer?.stop()
  await rm(dir, { recursive: true, force: true })
})

/** Send a HELLO and then `bad` on one sync stream; the frame types the peer sent until the stream ended, and how it ended. */
async function answerTo(bad: Uint8Array): Promise<{ types: number[]; error: string | undefined }> {
  const stream = await member.dialProtocol(multiaddr(peer.mesh.listenAddresses()[0] as string), SYNC_PROTOCOL_ID)
  const chunks: Uint8Array[] = []
  stream.addEventListener('message', (evt) => void chunks.push(evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()))
  const ended = new Promise<string | undefined>((resolve) => stream.addEventListener('close', (evt) => resolve(evt.error?.name)))
  const hello = encodeFrame({ type: FrameType.HELLO, version: SYNC_PROTOCOL_VERSION, workspaceId: peer.workspace.workspaceId, collections: [] })
  stream.send(lp(hello))
  stream.send(bad)
  const error = await ended
  const d = decoding.createDecoder(new Uint8Array(Buffer.concat(chunks)))
  const types: number[] = []
  while (decoding.hasContent(d)) types.push(decoding.readVarUint8Array(d)[0] as number)
  return { types, error }
}

describe('sync frames a peer refuses', () => {
  it('a length prefix over 64 MiB: the stream is reset, no ERROR frame', async () => {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 64 * 1024 * 1024 + 1)
    encoding.writeUint8Array(e, new Uint8Array(16))
    const { types, error } = await answerTo(encoding.toUint8Array(e))
    expect(error).toBe('StreamResetError')
    expect(types).toContain(FrameType.HELLO)
    expect(types).not.toContain(FrameType.ERROR)
  })

  it('a frame of an unknown type: ERROR, then the stream ends', async () => {
    const { types, error } = await answerTo(lp(new Uint8Array([9, 1, 2])))
    expect(error).toBe('StreamResetError')
    expect(types.at(-1)).toBe(FrameType.ERROR)
  })
})
