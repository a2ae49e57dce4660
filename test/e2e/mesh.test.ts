import { createServer, type AddressInfo } from 'node:net'
import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { Workspace } from '../../dist/index.js'
import { decodeToken, encodeToken } from '../../dist/protocol/pair-token.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { encodeFrame, FrameType, SYNC_PROTOCOL_ID, SYNC_PROTOCOL_VERSION } from '../../dist/protocol/sync-frames.js'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/** Three devices and more, as real `kitsync peer start` processes on loopback (no mDNS). */

const SYNC_TIMEOUT = 20_000
const { peer, client, invite: token, forget, peers } = devicesOfTest()

async function join(home: string, tok: string, name: string): Promise<void> {
  await kitsyncOk(home, ['join', tok, '--name', name, ...NET])
}

async function until(ws: Workspace, collection: string, key: string, expected: unknown): Promise<void> {
  const info = await ws.info()
  await waitUntil(
    async () => {
      const v = await ws.get(collection, key).catch(() => undefined)
      return isDeepStrictEqual(v, expected) ? true : undefined
    },
    SYNC_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)} on ${info.deviceId} (${info.home})`,
  ).catch(async (err: Error) => {
    const status = await ws.status().catch((e: Error) => e.message)
    throw new Error(`${err.message}\nits status: ${JSON.stringify(status, null, 1)}\npeers:\n${peers.map((p) => p.proc.transcript()).join('\n')}`)
  })
}

async function stop(p: RunningPeer): Promise<void> {
  await stopProc(p.proc)
  forget(p)
}

describe('mesh sync between real peers', () => {
  it('A, B and C join with tokens, all write, all converge; the joiner gets the whole workspace', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    await peer(ha)
    const a = await client(ha)
    await a.set('watchlists', 'tech', { symbols: ['AAPL'] })
    await join(hb, await token(ha), 'bee')
    // The join copied the workspace before returning, without B's peer running.
    expect(await kitsyncJson(hb, ['get', 'watchlists', 'tech', '--json'])).toEqual({ symbols: ['AAPL'] })
    await join(hc, await token(ha), 'sea')
    await peer(hb)
    await peer(hc)
    const b = await client(hb)
    const c = await client(hc)
    await a.set('pins', 'from-a', 1)
    await b.set('pins', 'from-b', 2)
    await c.set('pins', 'from-c', 3)
    await c.set('watchlists', 'tech', 'MSFT', { field: 'extra' })
    const all = { 'from-a': 1, 'from-b': 2, 'from-c': 3 }
    for (const ws of [a, b, c]) {
      await until(ws, 'pins', 'from-c', 3)
      await until(ws, 'pins', 'from-a', 1)
      await until(ws, 'pins', 'from-b', 2)
      expect(await ws.getAll('pins')).toEqual(all)
      await until(ws, 'watchlists', 'tech', { extra: 'MSFT', symbols: ['AAPL'] })
    }
    const devices = await kitsyncJson<{ name: string; state: string }[]>(ha, ['peers', '--json'])
    expect(devices.map((d) => d.name).sort()).toEqual(expect.arrayContaining(['bee', 'sea']))
    expect(devices.filter((d) => d.state === 'connected')).toHaveLength(2)
  })

  it('a line A - B - C built from bootstrap addresses converges although A and C never connect', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    await peer(ha)
    await join(hb, await token(ha), 'b')
    const pb = await peer(hb) // dials A from the address remembered when joining
    await join(hc, await token(hb), 'c') // C only ever learns B's address
    await peer(hc)
    const [a, c] = [await client(ha), await client(hc)]
    await a.set('journal', 'e1', { text: 'from A' })
    await until(c, 'journal', 'e1', { text: 'from A' })
    await c.set('journal', 'e2', { text: 'from C' })
    await until(a, 'journal', 'e2', { text: 'from C' })
    const seenByA = await kitsyncJson<{ peerId: string; state: string }[]>(ha, ['peers', '--json'])
    const cId = (await c.info()).deviceId
    expect(seenByA.find((d) => d.peerId === cId)?.state).not.toBe('connected')
    expect(pb.started.deviceId).toBe((await (await client(hb)).info()).deviceId)
  })

  it('a stopped peer catches up on restart, and offline edits on both sides merge', async () => {
    const [ha, hc] = [await makeHome(), await makeHome()]
    await peer(ha)
    await join(hc, await token(ha), 'c')
    let pc = await peer(hc)
    const a = await client(ha)
    await a.set('settings', 'ui', { theme: 'light', font: 12 })
    await until(await client(hc), 'settings', 'ui', { theme: 'light', font: 12 })
    await stop(pc)
    for (let i = 0; i < 100; i++) await a.set('runs', `cmd${i}`, { n: i })
    await a.set('settings', 'ui', 14, { field: 'font' })
    // Meanwhile C edits another field offline (no peer: the CLI writes the store directly).
    await kitsyncOk(hc, ['set', 'settings', 'ui', '--field', 'theme', '"dark"'])
    pc = await peer(hc)
    const c = await client(hc)
    await until(c, 'runs', 'cmd99', { n: 99 })
    expect(Object.keys(await c.getAll('runs'))).toHaveLength(100)
    for (const ws of [a, c]) await until(ws, 'settings', 'ui', { theme: 'dark', font: 14 })
    expect(pc.proc.exitInfo).toBeUndefined()
  })
})

describe('reconnecting', () => {
  it('redials a member that went away and came back on its address, then syncs again', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    const port = await freePort()
    const listenA = ['--listen', `/ip4/127.0.0.1/tcp/${port}`]
    let pa = await peer(ha, listenA)
    await join(hb, await token(ha), 'b')
    const pb = await peer(hb)
    const a = await client(ha)
    await a.set('orders', 'p1', { qty: 1 })
    await until(await client(hb), 'orders', 'p1', { qty: 1 })
    await a.close()
    forget(a)
    await stop(pa)
    // B notices the loss ...
    await pb.proc.waitForLine((l) => l.includes('"sync:offline"'), SYNC_TIMEOUT, 'B to see A go offline')
    pa = await peer(ha, listenA)
    // ... and finds A again by itself (backoff redial), without anyone dialling B.
    await pb.proc.waitForLine(
      (l) => l.includes('"sync:connected"'),
      SYNC_TIMEOUT,
      'B to reconnect to A',
      pb.proc.lines.findIndex((l) => l.includes('"sync:offline"')),
    )
    await (await client(ha)).set('orders', 'p2', { qty: 2 })
    await until(await client(hb), 'orders', 'p2', { qty: 2 })
  })
})

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('pairing refusals', () => {
  it('refuses a stranger that opens the sync protocol: it receives no byte', async () => {
    const ha = await makeHome()
    const pa = await peer(ha)
    const a = await client(ha)
    await a.set('secrets', 'ssh', { host: 'example.internal' })
    const addr = (pa.started as unknown as { listen: string[] }).listen[0] as string
    const stranger = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    try {
      const received: number[] = []
      let ended = false
      try {
        const stream = await stranger.dialProtocol(multiaddr(addr), SYNC_PROTOCOL_ID)
        // Even a well-formed hello for the right workspace gets nothing back.
        const hello = encodeFrame({
          type: FrameType.HELLO,
          version: SYNC_PROTOCOL_VERSION,
          workspaceId: (await a.info()).workspaceId,
          collections: ['secrets'],
        })
        const lp = lpStream(stream)
        await lp.write(hello).catch(() => undefined)
        for await (const chunk of stream) received.push(chunk.byteLength)
        ended = true
      } catch {
        ended = true
      }
      expect(ended).toBe(true)
      expect(received).toEqual([])
    } finally {
      await stranger.stop()
    }
    const st = await kitsyncJson<{ network?: { refusedConnections: number } }>(ha, ['status', '--json'])
    expect(st.network?.refusedConnections).toBeGreaterThan(0)
    expect(pa.proc.stdout).not.toContain('sync:connected')
  })

  it('refuses expired, reused, truncated and forged tokens with their codes', async () => {
    const [ha, hb, hc, hd] = [await makeHome(), await makeHome(), await makeHome(), await makeHome()]
    await peer(ha)
    const tok = await token(ha)
    await join(hb, tok, 'b')
    expectCliError(await kitsync(hc, ['join', tok, ...NET]), 'TOKEN_USED', 8)
    expectCliError(await kitsync(hc, ['join', tok.slice(0, tok.length - 6), ...NET]), 'TOKEN_INVALID', 8)
    // Forged: a well-formed token for A's workspace with a secret A never issued.
    const real = decodeToken(await token(ha))
    const forged = encodeToken({ ...real, secret: new Uint8Array(32).fill(7) })
    expectCliError(await kitsync(hd, ['join', forged, ...NET]), 'TOKEN_REFUSED', 8)
    // A token whose workspace is not the inviter's (its secret is genuine) is refused, and used up nothing.
    const genuine = decodeToken(await token(ha))
    const elsewhere = encodeToken({ ...genuine, workspaceId: 'f'.repeat(32) })
    expectCliError(await kitsync(hd, ['join', elsewhere, ...NET]), 'TOKEN_REFUSED', 8)
    await kitsyncOk(hd, ['join', encodeToken(genuine), ...NET])
    // Expired: a token of 0.05 minutes, used once its expiry has passed.
    const short = await kitsyncJson<{ token: string; expiresAt: string }>(ha, ['pair', '--json', '--ttl', '0.02'])
    await waitUntil(async () => (Date.now() > Date.parse(short.expiresAt) + 50 ? true : undefined), 10_000, 'the token to expire')
    const he = await makeHome()
    expectCliError(await kitsync(he, ['join', short.token, ...NET]), 'TOKEN_EXPIRED', 8)
    // Only the two devices that joined with valid tokens became members.
    const devices = await kitsyncJson<{ name: string }[]>(ha, ['peers', '--json'])
    expect(devices).toHaveLength(3)
  })
})
