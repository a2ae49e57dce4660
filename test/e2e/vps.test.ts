import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { ClassicLevel } from 'classic-level'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, cleanup, COMMAND_TIMEOUT_MS, makeHome, Proc, START_TIMEOUT_MS, stopProc, waitUntil, type CliResult } from '../helpers/cli.js'
import { announceSkip } from '../helpers/faults.js'
import { ip, Namespaces, netnsSkipReason, requireRootAndIp, run } from '../helpers/netns.js'
import { filesUnder, uploadedHead } from '../helpers/vps-store.js'

/**
 * The always-on VPS peer, in network namespaces this file creates: two "home networks" (A, B)
 * each joined by a veth pair to a "VPS" namespace only, which does not forward between them,
 * so A and B have no route to each other. Every kitsync process runs in one of them through
 * `ip netns exec` and the real CLI. Needs root and iproute2: without them the tests fail (they
 * do not skip). The scenarios build on each other and run in order.
 */

const FILE = 'test/e2e/vps.test.ts'
const WAIT = 30_000
const namespaces = new Namespaces('ksv')
const TAG = namespaces.name('')
const NS = { a: `${TAG}a`, b: `${TAG}b`, v: `${TAG}v` }
const ADDR = { a: '10.214.1.1', va: '10.214.1.2', b: '10.214.2.1', vb: '10.214.2.2' }
const VPS_PORT = 4771
const procs: Proc[] = []

function kitsyncIn(ns: string, home: string, args: string[]): Proc {
  return new Proc('ip', ['netns', 'exec', ns, process.execPath, CLI, '--home', home, ...args])
}

async function runIn(ns: string, home: string, args: string[]): Promise<CliResult> {
  const proc = kitsyncIn(ns, home, args)
  const info = await proc.waitForExit(COMMAND_TIMEOUT_MS * 3)
  return { ...info, stdout: proc.stdout, stderr: proc.stderr }
}

async function jsonIn<T>(ns: string, home: string, args: string[]): Promise<T> {
  const r = await runIn(ns, home, [...args, '--json'])
  if (r.code !== 0)
    throw new Error(`kitsync ${args.join(' ')} in ${ns} failed: exit ${r.code ?? r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

interface Status {
  info: { deviceId: string }
  revoked?: { revokedBy: string }
  network?: {
    listen: string[]
    keyEpoch: number
    refusedConnections: number
    devices: { peerId: string; state: string; address?: string }[]
    blindStore?:
      { role: 'store'; head: number; snapshotSeq: number } | { role: 'device'; stores: { peerId: string; live: boolean; cursor: number; pending: boolean }[] }
  }
}

const status = (ns: string, home: string): Promise<Status> => jsonIn<Status>(ns, home, ['status'])

interface Device {
  ns: string
  home: string
  id: string
  proc?: Proc
  args: string[]
}

function transcripts(): string {
  return procs.map((p) => p.transcript()).join('\n')
}

async function start(d: Device, headless = false): Promise<Record<string, unknown>> {
  const proc = kitsyncIn(d.ns, d.home, ['peer', 'start', ...(headless ? ['--headless'] : ['--json']), ...d.args])
  procs.push(proc)
  d.proc = proc
  const line = await proc.waitForLine((l) => l.includes('"event":"started"'), START_TIMEOUT_MS, 'the started line')
  const started = JSON.parse(line) as Record<string, unknown>
  d.id = started.deviceId as string
  return started
}

async function stop(d: Device, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const proc = d.proc as Proc
  const exit = await stopProc(proc, signal)
  if (signal === 'SIGTERM') expect(exit, proc.transcript()).toEqual({ code: 0, signal: null })
  d.proc = undefined
}

async function untilValue(d: Device, collection: string, key: string, expected: unknown): Promise<void> {
  let last: CliResult | undefined
  await waitUntil(
    async () => {
      last = await runIn(d.ns, d.home, ['get', collection, key, '--json'])
      return last.code === 0 && isDeepStrictEqual(JSON.parse(last.stdout), expected) ? true : undefined
    },
    WAIT,
    `${collection}/${key} = ${JSON.stringify(expected)} on ${d.ns}`,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nlast get: ${last?.stdout}${last?.stderr}\n${transcripts()}`)
  })
}

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  return waitUntil(check, WAIT, what).catch((err: Error) => {
    throw new Error(`${err.message}\n${transcripts()}`)
  })
}

/** The VPS store's head, and the device's cursor with that store once both agree (all uploaded). */
async function uploaded(d: Device, vps: Device): Promise<number> {
  return until(`${d.ns} has uploaded everything to the VPS`, async () => {
    const [sd, sv] = [await status(d.ns, d.home), await status(vps.ns, vps.home)]
    return uploadedHead(sd.network?.blindStore, sv.network?.blindStore, vps.id)
  })
}

const A: Device = { ns: NS.a, home: '', id: '', args: [] }
const B: Device = { ns: NS.b, home: '', id: '', args: [] }
const V: Device = { ns: NS.v, home: '', id: '', args: [] }
const MARK = `mk${process.pid}x`

beforeAll(async () => {
  await requireRootAndIp(FILE).then(
    () => namespaces.removeStale(),
    () => undefined,
  )
})

afterAll(async () => {
  try {
    for (const p of procs.splice(0)) await stopProc(p).catch(() => undefined)
    await cleanup()
  } finally {
    await namespaces.removeAll()
  }
})

describe.skipIf(announceSkip(FILE, netnsSkipReason(FILE)))('the VPS peer: relay and blind store, two home networks without a route between them', () => {
  it('setup: A pairs the VPS as untrusted, B joins through the relay', async () => {
    await requireRootAndIp(FILE)
    for (const ns of Object.values(NS)) {
      await namespaces.add(ns)
    }
    for (const [home, vps, h, v] of [
      [NS.a, NS.v, ADDR.a, ADDR.va],
      [NS.b, NS.v, ADDR.b, ADDR.vb],
    ] as const) {
      const [ih, iv] = [`${home}h`, `${home}v`]
      await ip('link', 'add', ih, 'netns', home, 'type', 'veth', 'peer', 'name', iv, 'netns', vps)
      await ip('-n', home, 'addr', 'add', `${h}/24`, 'dev', ih)
      await ip('-n', vps, 'addr', 'add', `${v}/24`, 'dev', iv)
      await ip('-n', home, 'link', 'set', ih, 'up')
      await ip('-n', vps, 'link', 'set', iv, 'up')
    }
    // The premise: A cannot reach B's network (no route, and the VPS does not forward).
    const probe = await run('ip', [
      'netns',
      'exec',
      NS.a,
      process.execPath,
      '-e',
      `require('node:net').connect(9, '${ADDR.b}').on('error', (e) => { console.log(e.code); process.exit(0) })`,
    ])
    expect(probe.stdout.trim()).toBe('ENETUNREACH')

    ;[A.home, B.home, V.home] = [await makeHome(), await makeHome(), await makeHome()]
    A.args = ['--no-mdns', '--listen', `/ip4/${ADDR.a}/tcp/0`]
    await start(A)
    await jsonIn(A.ns, A.home, ['set', 'notes', 'first', JSON.stringify({ text: `${MARK}-first` })])
    const { token: vpsToken } = await jsonIn<{ token: string }>(A.ns, A.home, ['pair', '--untrusted'])
    const joined = await jsonIn<{ caughtUp: boolean }>(V.ns, V.home, [
      'join',
      vpsToken,
      '--name',
      'vps',
      '--no-mdns',
      '--listen',
      `/ip4/0.0.0.0/tcp/${VPS_PORT}`,
    ])
    expect(joined.caughtUp).toBe(true)
    V.args = ['--relay', '--no-mdns', '--listen', `/ip4/0.0.0.0/tcp/${VPS_PORT}`]
    const started = await start(V, true)
    expect(started.role).toBe('untrusted')
    // The VPS got the membership and no key at all.
    expect((await status(V.ns, V.home)).network?.keyEpoch).toBe(0)
    const devices = await jsonIn<{ peerId: string; role: string }[]>(A.ns, A.home, ['devices'])
    expect(devices.find((d) => d.peerId === V.id)?.role).toBe('untrusted')

    // A restarts with the VPS configured: it reserves a slot on the relay.
    await stop(A)
    A.args = [...A.args, '--bootstrap', `/ip4/${ADDR.va}/tcp/${VPS_PORT}/p2p/${V.id}`]
    await start(A)
    await until('A listening through the relay', async () =>
      (await status(A.ns, A.home)).network?.listen.some((a) => a.includes('/p2p-circuit')) ? true : undefined,
    )
    // B pairs with A through the relay: the token carries A's relayed address.
    const { token, addresses } = await jsonIn<{ token: string; addresses: string[] }>(A.ns, A.home, ['pair'])
    expect(addresses.some((a) => a.includes(`/ip4/${ADDR.vb}/`) && a.endsWith('/p2p-circuit'))).toBe(true)
    const joinedB = await jsonIn<{ caughtUp: boolean }>(B.ns, B.home, ['join', token, '--name', 'bee', '--no-mdns', '--listen', `/ip4/${ADDR.b}/tcp/0`])
    expect(joinedB.caughtUp).toBe(true)
    B.args = ['--no-mdns', '--listen', `/ip4/${ADDR.b}/tcp/0`, '--bootstrap', `/ip4/${ADDR.vb}/tcp/${VPS_PORT}/p2p/${V.id}`]
    await start(B)
    await untilValue(B, 'notes', 'first', { text: `${MARK}-first` })
  })

  it('1. both devices online: they sync through the VPS (relayed connection and store)', async () => {
    await until('A and B connected through the relay', async () => {
      const dev = (await status(B.ns, B.home)).network?.devices.find((d) => d.peerId === A.id)
      return dev?.state === 'connected' && dev.address?.includes('/p2p-circuit') === true ? true : undefined
    })
    await jsonIn(A.ns, A.home, ['set', 'notes', 's1-a', JSON.stringify({ text: `${MARK}-s1-from-a` })])
    await untilValue(B, 'notes', 's1-a', { text: `${MARK}-s1-from-a` })
    await jsonIn(B.ns, B.home, ['set', 'notes', 's1-b', JSON.stringify({ text: `${MARK}-s1-from-b` })])
    await untilValue(A, 'notes', 's1-b', { text: `${MARK}-s1-from-b` })
    await uploaded(A, V)
    await uploaded(B, V)
  })

  it('2. never online together: A writes and goes offline, B comes later and gets everything from the VPS', async () => {
    await stop(B)
    await jsonIn(A.ns, A.home, ['set', 'notes', 's2', JSON.stringify({ text: `${MARK}-s2-while-b-away` })])
    await jsonIn(A.ns, A.home, ['set', 'journal', 'day1', JSON.stringify({ text: `${MARK}-s2-journal` })])
    await uploaded(A, V)
    await stop(A)
    await start(B)
    await untilValue(B, 'notes', 's2', { text: `${MARK}-s2-while-b-away` })
    await untilValue(B, 'journal', 'day1', { text: `${MARK}-s2-journal` })
  })

  it('3. the VPS store on disk holds none of the plaintext written on the devices and no key material', async () => {
    await stop(V)
    const keys = JSON.parse(await readFile(join(A.home, 'keys.json'), 'utf8')) as { keys: Record<string, string> }
    const secrets = Object.values(keys.keys)
    expect(secrets.length).toBeGreaterThan(0)
    const files = await filesUnder(V.home)
    expect(files.some((f) => f.endsWith('keys.json') && Object.keys((JSON.parse(readFileSync(f, 'utf8')) as { keys?: object }).keys ?? {}).length > 0)).toBe(
      false,
    )
    for (const f of files) {
      const bytes = await readFile(f)
      const raw = bytes.toString('latin1')
      expect(raw.includes(MARK), `${f} holds a marker`).toBe(false)
      for (const s of secrets) {
        expect(raw.includes(s), `${f} holds a key (hex)`).toBe(false)
        expect(bytes.includes(Buffer.from(s, 'hex')), `${f} holds a key (bytes)`).toBe(false)
      }
    }
    // LevelDB may compress: read every value of the store too.
    const db = new ClassicLevel<string, Uint8Array>(join(V.home, 'store'), { valueEncoding: 'view' })
    let values = 0
    try {
      for await (const [key, value] of db.iterator()) {
        values++
        const t = Buffer.from(value).toString('latin1')
        expect(t.includes(MARK), `store value ${key} holds a marker`).toBe(false)
        expect(key.includes('notes') || key.includes('journal'), `store key ${key} names a collection`).toBe(false)
        for (const s of secrets) expect(Buffer.from(value).includes(Buffer.from(s, 'hex'))).toBe(false)
      }
    } finally {
      await db.close()
    }
    expect(values).toBeGreaterThan(0)
    await start(V, true)
  })

  it('4. the VPS restarts in the middle (killed): nothing is lost', async () => {
    await start(A)
    await untilValue(A, 'notes', 's1-b', { text: `${MARK}-s1-from-b` })
    await stop(B)
    await jsonIn(A.ns, A.home, ['set', 'notes', 's4-before', JSON.stringify({ text: `${MARK}-s4-before` })])
    await uploaded(A, V)
    await stop(V, 'SIGKILL')
    await jsonIn(A.ns, A.home, ['set', 'notes', 's4-during', JSON.stringify({ text: `${MARK}-s4-during` })])
    await start(V, true)
    await jsonIn(A.ns, A.home, ['set', 'notes', 's4-after', JSON.stringify({ text: `${MARK}-s4-after` })])
    await uploaded(A, V)
    await stop(A)
    await start(B)
    for (const k of ['s4-before', 's4-during', 's4-after']) await untilValue(B, 'notes', k, { text: `${MARK}-${k}` })
  })

  it('5. after A revokes B, B gets no new data from the VPS or from A', async () => {
    await start(A)
    await until('A and B connected', async () =>
      (await status(A.ns, A.home)).network?.devices.find((d) => d.peerId === B.id)?.state === 'connected' ? true : undefined,
    )
    const epochBefore = (await status(B.ns, B.home)).network?.keyEpoch ?? 0
    const refusedBefore = [(await status(V.ns, V.home)).network?.refusedConnections ?? 0, (await status(A.ns, A.home)).network?.refusedConnections ?? 0]
    await jsonIn(A.ns, A.home, ['revoke', B.id, '--reason', 'lost'])
    await until('the VPS knows B is revoked', async () => {
      const d = await jsonIn<{ peerId: string; state: string }[]>(V.ns, V.home, ['devices'])
      return d.find((x) => x.peerId === B.id)?.state === 'revoked' ? true : undefined
    })
    await jsonIn(A.ns, A.home, ['set', 'notes', 's5', JSON.stringify({ text: `${MARK}-s5-after-revoke` })])
    await uploaded(A, V)
    // The VPS and A refused B (cut it off, or refused its redial); A told it it is revoked, so
    // B, started again, knows it and dials no one.
    await stop(B)
    await start(B)
    await until('B to know it is revoked', async () => ((await status(B.ns, B.home)).revoked !== undefined ? true : undefined))
    await until('the VPS and A refused B', async () => {
      const [v, a] = [await status(V.ns, V.home), await status(A.ns, A.home)]
      return (v.network?.refusedConnections ?? 0) > (refusedBefore[0] as number) && (a.network?.refusedConnections ?? 0) > (refusedBefore[1] as number)
        ? true
        : undefined
    })
    const sb = await status(B.ns, B.home)
    expect(sb.network?.keyEpoch).toBe(epochBefore)
    expect((await status(A.ns, A.home)).network?.keyEpoch).toBeGreaterThan(epochBefore)
    const got = await runIn(B.ns, B.home, ['get', 'notes', 's5', '--json'])
    expect(got.stdout.includes(MARK), got.stdout).toBe(false)
    // B still has what it had before.
    await untilValue(B, 'notes', 's4-after', { text: `${MARK}-s4-after` })
  })

  it('headless: the VPS logged JSON lines only, no secret, and stopped cleanly on SIGTERM', async () => {
    const proc = V.proc as Proc
    await stop(V)
    const lines = proc.stdout.trim().split('\n')
    const events = lines.map((l) => (JSON.parse(l) as { event: string }).event)
    expect(events[0]).toBe('started')
    expect(events.slice(-2)).toEqual(['stopping', 'stopped'])
    expect(proc.stdout).not.toMatch(/ks1[A-Za-z0-9_-]{20,}/)
    expect(proc.stderr).toBe('')
  })
})
