import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { CLI, cleanup, COMMAND_TIMEOUT_MS, kitsync, kitsyncOk, makeHome, Proc, startPeer, stopProc, type CliResult } from '../helpers/cli.js'
import { announceSkip } from '../helpers/faults.js'
import { ip, Namespaces, netnsSkipReason, requireRootAndIp } from '../helpers/netns.js'

/**
 * `kitsync doctor` through the real CLI: a healthy home, then one fault per check that this
 * test controls (permissions, a held port, an unreachable bootstrap address, a store that lost
 * CURRENT), and, as root, a network namespace without a multicast route. Checks that depend on
 * the machine (multicast outside a namespace, the Node version) are not asserted on.
 */

const FILE = 'test/e2e/doctor.test.ts'

interface Check {
  name: string
  ok: boolean
  message: string
  skipped?: boolean
}

const servers: Server[] = []

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve))
})
afterAll(cleanup)

function checksOf(r: CliResult): Check[] {
  return (JSON.parse(r.stdout) as { checks: Check[] }).checks
}

function check(checks: Check[], name: string): Check {
  const found = checks.find((c) => c.name === name)
  if (found === undefined) throw new Error(`no check ${name} in ${JSON.stringify(checks)}`)
  return found
}

/** A TCP server on a loopback port (held by this test process, not by kitsync). */
async function holdPort(): Promise<number> {
  const server = createServer()
  servers.push(server)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return (server.address() as AddressInfo).port
}

/** A loopback port nothing listens on: opened, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function initHome(): Promise<string> {
  const home = await makeHome()
  await kitsyncOk(home, ['init'])
  await kitsyncOk(home, ['set', 'notes', 'a', '{"text":"hi"}'])
  return home
}

const LISTEN_FREE = ['--listen', '/ip4/127.0.0.1/tcp/0']

describe('kitsync doctor', () => {
  it('passes on a healthy home: store, permissions, ports and bootstrap are ok', async () => {
    const home = await initHome()
    const r = await kitsync(home, ['doctor', '--json', ...LISTEN_FREE])
    const checks = checksOf(r)
    expect(checks.map((c) => c.name)).toEqual(['multicast', 'ports', 'bootstrap', 'relay', 'clock', 'workspace', 'store', 'permissions', 'node'])
    for (const name of ['ports', 'workspace', 'store', 'permissions', 'bootstrap', 'clock']) expect(check(checks, name).ok, JSON.stringify(checks)).toBe(true)
    expect(check(checks, 'store').message).toMatch(/^opens; store\/ /)
    expect(check(checks, 'clock')).toMatchObject({ skipped: true, message: expect.stringMatching(/no peer/) })
    // Exit 0 unless a check that depends on this machine failed.
    const machineFailed = checks.some((c) => !c.ok && (c.name === 'multicast' || c.name === 'node'))
    if (!machineFailed) expect(r.code, r.stderr).toBe(0)
    // Human output: one line per check.
    const human = await kitsync(home, ['doctor', ...LISTEN_FREE])
    expect(human.stdout).toMatch(/^ok {4}store: opens/m)
    expect(human.stdout).toMatch(/^ok {4}permissions: /m)
  })

  it('a home made 0755 fails the permissions check and says chmod 700', async () => {
    const home = await initHome()
    await chmod(home, 0o755)
    const r = await kitsync(home, ['doctor', '--json', ...LISTEN_FREE])
    const c = check(checksOf(r), 'permissions')
    expect(c.ok).toBe(false)
    expect(c.message).toContain(`chmod 700 '${home}'`)
    expect(r.code).toBe(11)
    expect(JSON.parse(r.stderr)).toMatchObject({ error: { code: 'CHECK_FAILED', message: expect.stringContaining('permissions') } })
    // doctor reports, it does not repair.
    expect((await stat(home)).mode & 0o777).toBe(0o755)
  })

  it('a file of the home opened to others fails the permissions check and says chmod 600', async () => {
    const home = await initHome()
    await chmod(join(home, 'workspace.json'), 0o644)
    const c = check(checksOf(await kitsync(home, ['doctor', '--json', ...LISTEN_FREE])), 'permissions')
    expect(c.ok).toBe(false)
    expect(c.message).toContain(`chmod 600 '${join(home, 'workspace.json')}'`)
  })

  it('a listen port another process holds fails the ports check', async () => {
    const home = await initHome()
    const port = await holdPort()
    const r = await kitsync(home, ['doctor', '--json', '--listen', `/ip4/127.0.0.1/tcp/${port}`])
    const c = check(checksOf(r), 'ports')
    expect(c.ok).toBe(false)
    expect(c.message).toContain(`/ip4/127.0.0.1/tcp/${port} (in use)`)
    expect(c.message).toMatch(/--listen/)
    expect(r.code).toBe(11)
  })

  it('with the peer running, ports names its listen addresses', async () => {
    const home = await initHome()
    const { proc } = await startPeer(home)
    try {
      const checks = checksOf(await kitsync(home, ['doctor', '--json']))
      const ports = check(checks, 'ports')
      expect(ports.ok).toBe(true)
      expect(ports.message).toMatch(new RegExp(`^the peer \\(pid ${proc.pid}\\) listens on /ip4/127\\.0\\.0\\.1/tcp/\\d+`))
      expect(check(checks, 'store')).toMatchObject({ ok: true, message: expect.stringMatching(/^open in the running peer/) })
      expect(check(checks, 'clock')).toMatchObject({ ok: true, skipped: true })
      // peer.pid and peer.sock are the peer's own and private too.
      expect(check(checks, 'permissions').ok, JSON.stringify(checks)).toBe(true)
    } finally {
      await stopProc(proc)
    }
  })

  it('a remembered bootstrap address where nothing listens fails its check; a live one passes', async () => {
    const home = await initHome()
    const dead = await closedPort()
    const live = await holdPort()
    const config = JSON.parse(await readFile(join(home, 'workspace.json'), 'utf8')) as Record<string, unknown>
    const deadAddr = `/ip4/127.0.0.1/tcp/${dead}`
    const liveAddr = `/ip4/127.0.0.1/tcp/${live}`
    await writeFile(join(home, 'workspace.json'), JSON.stringify({ ...config, bootstrap: [deadAddr, liveAddr] }))
    const r = await kitsync(home, ['doctor', '--json', ...LISTEN_FREE])
    const checks = checksOf(r)
    const bad = check(checks, `bootstrap ${deadAddr}`)
    expect(bad.ok).toBe(false)
    expect(bad.message).toMatch(/connection refused/)
    expect(check(checks, `bootstrap ${liveAddr}`).ok).toBe(true)
    expect(r.code).toBe(11)
  })

  it('a workspace.json that is not JSON fails the workspace check; the other checks still run', async () => {
    const home = await initHome()
    await writeFile(join(home, 'workspace.json'), '{"id":')
    const r = await kitsync(home, ['doctor', '--json', ...LISTEN_FREE])
    const checks = checksOf(r)
    expect(check(checks, 'workspace')).toMatchObject({ ok: false, message: expect.stringMatching(/^DATA_CORRUPTION: /) })
    expect(check(checks, 'store').ok).toBe(true)
    expect(r.code).toBe(11)
  })

  it('a store whose CURRENT was deleted fails store health with DATA_CORRUPTION', async () => {
    const home = await initHome()
    await rm(join(home, 'store', 'CURRENT'))
    const r = await kitsync(home, ['doctor', '--json', ...LISTEN_FREE])
    const c = check(checksOf(r), 'store')
    expect(c.ok).toBe(false)
    expect(c.message).toMatch(/^DATA_CORRUPTION: /)
    expect(c.message).toContain('CURRENT')
    expect(r.code).toBe(11)
  })
})

const namespaces = new Namespaces('ksd')
const TAG = namespaces.name('')

describe.skipIf(announceSkip(FILE, netnsSkipReason(FILE)))('kitsync doctor in a network namespace', () => {
  afterAll(() => namespaces.removeAll())

  async function doctorIn(ns: string, home: string): Promise<CliResult> {
    const proc = new Proc('ip', ['netns', 'exec', ns, process.execPath, CLI, '--home', home, 'doctor', '--json', ...LISTEN_FREE])
    const info = await proc.waitForExit(COMMAND_TIMEOUT_MS)
    return { ...info, stdout: proc.stdout, stderr: proc.stderr }
  }

  it('fails the multicast check where multicast has no route, and passes with only lo', async () => {
    await requireRootAndIp(FILE)
    await namespaces.removeStale()
    const home = await initHome()
    // Only lo: multicast-dns sends through 127.0.0.1, so mDNS works (as `status` says).
    const lo = `${TAG}l`
    await namespaces.add(lo)
    expect(check(checksOf(await doctorIn(lo, home)), 'multicast').ok).toBe(true)
    // An interface with an address but no multicast and no default route (a LAN that is down).
    const ns = `${TAG}m`
    await namespaces.add(ns)
    const [v0, v1] = [`${TAG}m0`, `${TAG}m1`]
    await ip('-n', ns, 'link', 'add', v0, 'type', 'veth', 'peer', 'name', v1)
    await ip('-n', ns, 'addr', 'add', '10.213.3.1/24', 'dev', v0)
    await ip('-n', ns, 'link', 'set', v0, 'up')
    await ip('-n', ns, 'link', 'set', v1, 'up')
    expect(await ip('-n', ns, 'route', 'show', 'table', 'main')).not.toMatch(/^(default|224\.)/m)
    const r = await doctorIn(ns, home)
    const c = check(checksOf(r), 'multicast')
    expect(c.ok).toBe(false)
    expect(c.message).toMatch(/^mDNS cannot work here: no route for multicast/)
    expect(c.message).toMatch(/--bootstrap/)
    expect(r.code).toBe(11)
  })
})
