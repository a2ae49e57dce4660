import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { readFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openWorkspace, startPeer } from '../../dist/index.js'
import { makeHome, waitUntil } from '../helpers/cli.js'
import { loopbackPeers, type Peer } from '../helpers/loopback-peers.js'

/**
 * The long operations take an AbortSignal (as js-libp2p's do): an aborted call rejects with
 * ABORTED, at once when the signal had already aborted (and does nothing), and promptly when it
 * aborts while the call waits on a device that never answers, long before the call's timeout.
 */

const peers = loopbackPeers()

/** Far beyond what any test here waits: a call that ends must have been ended by its signal. */
const LONG_MS = 60_000
/** How soon after the abort the call must have rejected (libp2p's own dial limits are 6-10 s). */
const PROMPT_MS = 2_000

/** A TCP listener on loopback that accepts connections and never says a word. */
async function silentListener(): Promise<{ address: string; connections: () => number; open: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  let count = 0
  const server: Server = createServer((socket) => {
    count++
    sockets.add(socket)
    socket.on('error', () => undefined)
    socket.resume() // reads (and drops) what comes, so that the other side's hang-up is seen
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
  afterAll(close)
  return { address: `/ip4/127.0.0.1/tcp/${port}`, connections: () => count, open: () => sockets.size, close }
}

/** A trusted member of `peer`'s workspace that lives at `address` (which never answers). */
async function silentMember(peer: Peer, address: string): Promise<string> {
  const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  await peer.workspace.addMember(id.toString(), { name: 'silent', addedBy: peer.deviceId, addedAt: Date.now() })
  await peer.mesh.node.peerStore.merge(id, { multiaddrs: [multiaddr(address)] })
  return id.toString()
}

/** Counts what `sync now` starts on the peer's mesh: dials skipping the backoff, and sync-session opens. */
function countDials(peer: Peer): () => number {
  let n = 0
  const mesh = peer.mesh
  const redialNow = mesh.redialNow.bind(mesh)
  const openSyncTo = mesh.openSyncTo.bind(mesh)
  mesh.redialNow = () => {
    n++
    redialNow()
  }
  mesh.openSyncTo = (...args: Parameters<typeof openSyncTo>) => {
    n++
    return openSyncTo(...args)
  }
  return () => n
}

/** The call's rejection, and how long after `from` it came. */
async function rejection(call: Promise<unknown>, from: () => number): Promise<{ err: unknown; afterMs: number }> {
  try {
    const value = await call
    throw new Error(`expected a rejection, got ${JSON.stringify(value)}`)
  } catch (err) {
    return { err, afterMs: Date.now() - from() }
  }
}

describe('AbortSignal on sync now, fetch and join', () => {
  it('sync now with an aborted signal rejects with ABORTED at once and dials no one', async () => {
    const a = await peers.start()
    const silent = await silentListener()
    await silentMember(a, silent.address)
    const dials = countDials(a)
    const started = Date.now()
    const { err } = await rejection(a.workspace.syncNow({ timeoutMs: LONG_MS, signal: AbortSignal.abort() }), () => started)
    expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
    expect((err as Error).message).toBe('sync now was aborted')
    expect(Date.now() - started).toBeLessThan(PROMPT_MS)
    // Nothing was dialed nor opened.
    expect(dials()).toBe(0)
  })

  it('sync now aborted while dialing a device that never answers rejects promptly with ABORTED', async () => {
    const a = await peers.start()
    const silent = await silentListener()
    await silentMember(a, silent.address)
    const dials = countDials(a)
    const controller = new AbortController()
    let abortedAt = 0
    const call = a.workspace.syncNow({ timeoutMs: LONG_MS, signal: controller.signal })
    call.catch(() => undefined)
    // The dial is under way (the device's address took the connection, and answers nothing).
    await waitUntil(async () => (dials() > 0 && silent.connections() > 0 ? true : undefined), 10_000, 'the dial to the silent device')
    abortedAt = Date.now()
    controller.abort()
    const { err, afterMs } = await rejection(call, () => abortedAt)
    expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
    expect(afterMs).toBeLessThan(PROMPT_MS)
    // Without a signal it still waits for the device and reports it unreachable (behaviour kept).
    const report = await a.workspace.syncNow({ timeoutMs: 500 })
    expect(report.peers).toHaveLength(1)
    expect(report.peers[0]?.reached).toBe(false)
  })

  it('fetch with an aborted signal rejects with ABORTED and leaves the items as they were', async () => {
    const a = await peers.start()
    const before = await a.workspace.items()
    const { err } = await rejection(a.workspace.fetch('drawings.AAPL-1D', { signal: AbortSignal.abort() }), Date.now)
    expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
    expect(await a.workspace.items()).toEqual(before)
  })

  it('fetch aborted while the device holding the collection has not answered rejects promptly, and keeps the item', async () => {
    const a = await peers.start()
    await a.workspace.set('drawings.AAPL-1D', 'line1', { from: 1, to: 2 })
    const j = await peers.start()
    const invite = await a.createInvite()
    expect((await j.join(invite.token, 'joiner')).caughtUp).toBe(true)
    expect((await j.workspace.items()).collections.map((c) => c.name)).not.toContain('drawings.AAPL-1D')
    // From now on the device holding it does not hand the collection out until the test ends.
    let asked: () => void = () => undefined
    const wasAsked = new Promise<void>((resolve) => (asked = resolve))
    let release: () => void = () => undefined
    const released = new Promise<void>((resolve) => (release = resolve))
    const storedState = a.workspace.storedState.bind(a.workspace)
    a.workspace.storedState = async (name: string) => {
      if (name === 'drawings.AAPL-1D') {
        asked()
        await released
      }
      return storedState(name)
    }
    try {
      const controller = new AbortController()
      let abortedAt = 0
      const call = j.workspace.fetch('drawings.AAPL-1D', { timeoutMs: LONG_MS, signal: controller.signal })
      call.catch(() => undefined)
      await wasAsked
      abortedAt = Date.now()
      controller.abort()
      const { err, afterMs } = await rejection(call, () => abortedAt)
      expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
      expect(afterMs).toBeLessThan(PROMPT_MS)
      // As after a fetch that timed out: the collection stays among the items, pulled when it can be.
      expect((await j.workspace.items()).items).toContain('drawings.AAPL-1D')
    } finally {
      release()
    }
  })

  it('join with an aborted signal rejects with ABORTED and leaves the home untouched', async () => {
    const a = await peers.start()
    const jHome = await makeHome()
    const j = await peers.start(jHome)
    const workspaceId = j.workspace.workspaceId
    const invite = await a.createInvite()
    const { err } = await rejection(j.join(invite.token, 'joiner', { signal: AbortSignal.abort() }), Date.now)
    expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
    expect(j.workspace.workspaceId).toBe(workspaceId)
    expect(Object.keys(await a.workspace.members())).not.toContain(j.deviceId)
    // The token was not used: the same device joins with it afterwards.
    const result = await j.join(invite.token, 'joiner')
    expect(result.workspaceId).toBe(a.workspace.workspaceId)
  })

  it('join aborted while waiting for the inviter to approve rejects promptly and adopts nothing', async () => {
    const a = await peers.start()
    const jHome = await makeHome()
    const j = await peers.start(jHome)
    const workspaceId = j.workspace.workspaceId
    // A --confirm token: the inviter holds the joiner until someone approves (never, here).
    const invite = await a.createInvite(undefined, { confirm: true })
    const controller = new AbortController()
    let abortedAt = 0
    let shown: (code: string) => void = () => undefined
    const codeShown = new Promise<string>((resolve) => (shown = resolve))
    const call = j.join(invite.token, 'joiner', { signal: controller.signal, onCode: (code) => shown(code) })
    call.catch(() => undefined)
    await codeShown
    abortedAt = Date.now()
    controller.abort()
    const { err, afterMs } = await rejection(call, () => abortedAt)
    expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
    expect(afterMs).toBeLessThan(PROMPT_MS)
    // As after a failed join: the home keeps its own workspace, and remembers no inviter.
    expect(j.workspace.workspaceId).toBe(workspaceId)
    const config = JSON.parse(await readFile(join(jHome, 'workspace.json'), 'utf8')) as { bootstrap?: string[] }
    expect(config.bootstrap).toBeUndefined()
  })

  it('a dial aborted while the address never answers rejects promptly with ABORTED; an aborted one dials nothing', async () => {
    const a = await peers.start()
    const silent = await silentListener()
    await expect(a.mesh.dial(silent.address, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' })
    expect(silent.connections()).toBe(0)
    const controller = new AbortController()
    let abortedAt = 0
    const call = a.mesh.dial(silent.address, { signal: controller.signal })
    call.catch(() => undefined)
    await waitUntil(async () => (silent.connections() > 0 ? true : undefined), 10_000, 'the dial to the silent address')
    abortedAt = Date.now()
    controller.abort()
    const { err, afterMs } = await rejection(call, () => abortedAt)
    expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
    expect(afterMs).toBeLessThan(PROMPT_MS)
    // The dial itself was cancelled: libp2p hung up at once (its own limit for an address is 6 s).
    await waitUntil(async () => (silent.open() === 0 ? true : undefined), PROMPT_MS, 'the cancelled dial to hang up')
  })

  it('through the control socket, an aborted sync now stops waiting for the peer and rejects with ABORTED', async () => {
    const home = await makeHome()
    const peer = await startPeer({ home, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false })
    const silent = await silentListener()
    await silentMember(peer, silent.address)
    const dials = countDials(peer)
    const ws = await openWorkspace({ home, mode: 'peer' })
    try {
      expect(ws.mode).toBe('peer')

      const already = await rejection(ws.syncNow({ timeoutMs: LONG_MS, signal: AbortSignal.abort() }), Date.now)
      expect(already.err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
      // Not even sent: the peer dialed nor opened anything.
      expect(dials()).toBe(0)

      const controller = new AbortController()
      let abortedAt = 0
      const call = ws.syncNow({ timeoutMs: LONG_MS, signal: controller.signal })
      call.catch(() => undefined)
      // The peer got the request and is dialing the device (which takes the connection and answers nothing).
      await waitUntil(async () => (dials() > 0 && silent.connections() > 0 ? true : undefined), 10_000, 'the dial to the silent device')
      abortedAt = Date.now()
      controller.abort()
      const { err, afterMs } = await rejection(call, () => abortedAt)
      expect(err).toMatchObject({ name: 'KitsyncError', code: 'ABORTED' })
      expect(afterMs).toBeLessThan(PROMPT_MS)
    } finally {
      await ws.close()
      await peer.stop()
    }
  })
})
