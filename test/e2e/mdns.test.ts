import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, cleanup, COMMAND_TIMEOUT_MS, makeHome, Proc, START_TIMEOUT_MS, stopProc, waitUntil, type CliResult, type StartedEvent } from '../helpers/cli.js'
import { announceSkip } from '../helpers/faults.js'
import { ip, Namespaces, netnsSkipReason, requireRootAndIp, run } from '../helpers/netns.js'

/**
 * mDNS discovery between real `kitsync peer start` processes, each in a network namespace this
 * file creates (two joined by a veth pair with multicast routes, one with no multicast route).
 * Every kitsync process runs inside one of them through `ip netns exec`, so no multicast packet
 * ever reaches the machine's real interfaces. Needs root and iproute2: without them the tests
 * fail (they do not skip), since a skipped test would read as a pass.
 */

const FILE = 'test/e2e/mdns.test.ts'
const SYNC_TIMEOUT = 20_000
/** Namespaces and interfaces of this run: unique per test process, found again if it crashed. */
const namespaces = new Namespaces('ksm')
const TAG = namespaces.name('')
const NS = { a: `${TAG}a`, b: `${TAG}b`, c: `${TAG}c` }
const ADDR = { a: '10.213.1.1', b: '10.213.1.2', c: '10.213.2.1' }
/** libp2p:mdns logs "peer found" at debug level: kept in the transcript shown on failure. */
const PEER_ENV = { DEBUG: 'libp2p:mdns,libp2p:mdns:error' }

const peers: Proc[] = []

/** `ip netns exec NS node bin/kitsync.js --home HOME ...args` (ip execs node: the pid is node's). */
function kitsyncIn(ns: string, home: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return new Proc('ip', ['netns', 'exec', ns, process.execPath, CLI, '--home', home, ...args], { env })
}

async function runIn(ns: string, home: string, args: string[]): Promise<CliResult> {
  const proc = kitsyncIn(ns, home, args)
  const info = await proc.waitForExit(COMMAND_TIMEOUT_MS)
  return { ...info, stdout: proc.stdout, stderr: proc.stderr }
}

async function jsonIn<T>(ns: string, home: string, args: string[]): Promise<T> {
  const r = await runIn(ns, home, [...args, '--json'])
  if (r.code !== 0 || r.stderr !== '') {
    throw new Error(`kitsync ${args.join(' ')} in ${ns} failed: exit ${r.code ?? r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`)
  }
  return JSON.parse(r.stdout) as T
}

interface Started extends StartedEvent {
  listen: string[]
  discovery: { mdns: string; reason?: string }
}

interface Status {
  network?: {
    discovery: { mdns: string; reason?: string }
    bootstrap: string[]
    connected: number
    devices: { peerId: string; state: string; address?: string }[]
  }
}

async function startPeerIn(ns: string, home: string, args: string[]): Promise<{ proc: Proc; started: Started }> {
  const proc = kitsyncIn(ns, home, ['peer', 'start', '--json', ...args], PEER_ENV)
  peers.push(proc)
  const line = await proc.waitForLine((l) => l.startsWith('{"event":"started"'), START_TIMEOUT_MS, "the peer's started line")
  return { proc, started: JSON.parse(line) as Started }
}

/** Poll `get COLLECTION KEY` through the CLI until it prints `expected`. */
async function untilValue(ns: string, home: string, collection: string, key: string, expected: unknown): Promise<void> {
  let last: CliResult | undefined
  await waitUntil(
    async () => {
      last = await runIn(ns, home, ['get', collection, key, '--json'])
      return last.code === 0 && isDeepStrictEqual(JSON.parse(last.stdout), expected) ? true : undefined
    },
    SYNC_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)} in ${home} (ns ${ns})`,
  ).catch((err: Error) => withTranscripts(new Error(`${err.message}\nlast get: exit ${last?.code} ${last?.stdout}${last?.stderr}`)))
}

/** Rethrow with what every peer printed (its mDNS debug log included). */
function withTranscripts(err: Error): never {
  throw new Error(`${err.message}\npeers:\n${peers.map((p) => p.transcript()).join('\n')}`)
}

beforeAll(async () => {
  await requireRootAndIp(FILE).then(
    () => namespaces.removeStale(),
    () => undefined,
  )
})

afterAll(async () => {
  try {
    for (const p of peers.splice(0)) await stopProc(p).catch(() => undefined)
    await cleanup()
  } finally {
    await namespaces.removeAll()
  }
})

describe.skipIf(announceSkip(FILE, netnsSkipReason(FILE)))('mDNS discovery inside network namespaces', () => {
  it('two devices on one link find each other by mDNS alone and sync both ways', async () => {
    await requireRootAndIp(FILE)
    // A and B joined by a veth pair, each with a multicast route on its end.
    await namespaces.add(NS.a)
    await namespaces.add(NS.b)
    const [va, vb] = [`${TAG}va`, `${TAG}vb`]
    await ip('link', 'add', va, 'netns', NS.a, 'type', 'veth', 'peer', 'name', vb, 'netns', NS.b)
    for (const [ns, dev, addr] of [
      [NS.a, va, ADDR.a],
      [NS.b, vb, ADDR.b],
    ] as const) {
      await ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev)
      await ip('-n', ns, 'link', 'set', dev, 'up', 'multicast', 'on')
      await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev)
    }
    const listenA = ['--listen', `/ip4/${ADDR.a}/tcp/0`]
    const listenB = ['--listen', `/ip4/${ADDR.b}/tcp/0`]
    const [ha, hb] = [await makeHome(), await makeHome()]

    // Pair: A runs with mDNS on, B joins with the token (no mDNS for the join itself).
    let a = await startPeerIn(NS.a, ha, listenA)
    expect(a.started.discovery).toEqual({ mdns: 'on' })
    await jsonIn(NS.a, ha, ['set', 'notes', 'before-join', '{"by":"A"}'])
    const { token } = await jsonIn<{ token: string }>(NS.a, ha, ['pair'])
    const joined = await jsonIn<{ caughtUp: boolean }>(NS.b, hb, ['join', token, '--name', 'bee', ...listenB, '--no-mdns'])
    expect(joined.caughtUp).toBe(true)

    // Forget how B reached A: the join remembered A's address as a bootstrap address.
    const configFile = join(hb, 'workspace.json')
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { bootstrap?: string[] }
    expect(config.bootstrap?.some((addr) => addr.startsWith(`/ip4/${ADDR.a}/tcp/`))).toBe(true)
    delete config.bootstrap
    await writeFile(configFile, JSON.stringify(config, null, 2) + '\n')

    // Restart A too, on a new port: neither peer has a bootstrap address or remembers a dial.
    expect(await stopProc(a.proc)).toEqual({ code: 0, signal: null })
    peers.splice(peers.indexOf(a.proc), 1)
    a = await startPeerIn(NS.a, ha, listenA)
    const b = await startPeerIn(NS.b, hb, listenB)
    for (const p of [a, b]) expect(p.started.discovery).toEqual({ mdns: 'on' })
    const [idA, idB] = [a.started.deviceId, b.started.deviceId]

    // B finds A (or A finds B) by mDNS and they open the sync session: both report it connected.
    // (Not from the peers' `sync:connected` lines: peer start can miss that event, see the report.)
    for (const [ns, home, other] of [
      [NS.b, hb, idA],
      [NS.a, ha, idB],
    ] as const) {
      await waitUntil(
        async () => ((await jsonIn<Status>(ns, home, ['status'])).network?.devices.find((d) => d.peerId === other)?.state === 'connected' ? true : undefined),
        SYNC_TIMEOUT,
        `${other} connected in the status of ${home} (ns ${ns})`,
      ).catch(withTranscripts)
    }
    await untilValue(NS.b, hb, 'notes', 'before-join', { by: 'A' })
    await jsonIn(NS.a, ha, ['set', 'notes', 'from-a', '{"by":"A"}'])
    await untilValue(NS.b, hb, 'notes', 'from-a', { by: 'A' })
    await jsonIn(NS.b, hb, ['set', 'notes', 'from-b', '{"by":"B"}'])
    await untilValue(NS.a, ha, 'notes', 'from-b', { by: 'B' })

    for (const [ns, home, other, otherAddr] of [
      [NS.a, ha, idB, ADDR.b],
      [NS.b, hb, idA, ADDR.a],
    ] as const) {
      const st = await jsonIn<Status>(ns, home, ['status'])
      const context = JSON.stringify(st.network)
      expect(st.network?.discovery, context).toEqual({ mdns: 'on' })
      expect(st.network?.bootstrap, context).toEqual([])
      expect(st.network?.connected, context).toBeGreaterThanOrEqual(1)
      const device = st.network?.devices.find((d) => d.peerId === other)
      expect(device?.state, context).toBe('connected')
      expect(device?.address, context).toMatch(new RegExp(`^/ip4/${otherAddr.replace(/\./g, '\\.')}/tcp/\\d+`))
    }
  })

  it('reports mDNS as unavailable, with a reason, where there is no multicast route', async () => {
    await requireRootAndIp(FILE)
    // An interface with an address but no route to 224.0.0.0/4 and no default route: a host
    // whose LAN is down. (Not a namespace with only `lo`: there multicast-dns sends through
    // 127.0.0.1 and mDNS does work.) A veth pair with both ends in the namespace.
    await namespaces.add(NS.c)
    const [v0, v1] = [`${TAG}c0`, `${TAG}c1`]
    await ip('-n', NS.c, 'link', 'add', v0, 'type', 'veth', 'peer', 'name', v1)
    await ip('-n', NS.c, 'addr', 'add', `${ADDR.c}/24`, 'dev', v0)
    await ip('-n', NS.c, 'link', 'set', v0, 'up')
    await ip('-n', NS.c, 'link', 'set', v1, 'up')
    expect(await ip('-n', NS.c, 'route', 'show', 'table', 'main')).not.toMatch(/^(default|224\.)/m)
    // The premise: a multicast datagram cannot leave this namespace at all.
    const probe = await run('ip', [
      'netns',
      'exec',
      NS.c,
      process.execPath,
      '-e',
      "require('node:dgram').createSocket('udp4').send('x', 9, '224.0.0.251', (e) => { console.log(e ? e.code : 'sent'); process.exit(0) })",
    ])
    expect(probe.stdout.trim()).toBe('ENETUNREACH')

    const hc = await makeHome()
    const c = await startPeerIn(NS.c, hc, ['--listen', `/ip4/${ADDR.c}/tcp/0`])
    expect(c.started.discovery.mdns, c.proc.transcript()).toBe('unavailable')
    expect(c.started.discovery.reason, c.proc.transcript()).toMatch(/\S/)
    const st = await jsonIn<Status>(NS.c, hc, ['status'])
    expect(st.network?.discovery).toEqual(c.started.discovery)
    expect(c.proc.exitInfo).toBeUndefined()
  })
})
