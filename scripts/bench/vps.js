// Benchmark section "vps": the always-on VPS peer (docs/vps.md) on loopback, mDNS off.
//   - one small update A -> B when A and B meet only through the VPS relay, against a directly
//     connected pair, in the same run (p50/p99 and the ratio);
//   - a device catching up 10,000 updates it missed from the VPS's encrypted store (A offline);
//   - the VPS's memory (RSS) with 20 devices connected to it and syncing through it.
// The VPS and every device run in their own processes (scripts/bench/mesh-peer.js, and 20
// devices in one scripts/bench/vps-devices.js process), driven over IPC.
import { fork } from 'node:child_process'
import { join } from 'node:path'
import { BenchNode } from './mesh.js'
import { editWorkspaceConfig, percentile, processMemory, ROOT, round, summary, withTimeout } from './lib.js'

export const id = 'vps'
export const title = 'VPS peer: relay latency, catch-up from the encrypted store, VPS memory'

const SCALE = process.env.BENCH_QUICK === '1' ? 0.1 : 1
const n = (count) => Math.max(1, Math.round(count * SCALE))
const LATENCY = { warmup: n(50), count: n(500) }
const CATCHUP = { updates: n(10_000) }
const FLEET = { devices: 20, writes: n(50) }
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
const now = () => Number(process.hrtime.bigint()) / 1e6

export async function run(ctx) {
  const { measure, note, tmp, log } = ctx
  const nodes = new Set()
  const kitsync = async (name, home, args = {}) => {
    const node = await BenchNode.fork(name)
    nodes.add(node)
    node.home = home
    node.info = await node.request('kitsync-start', { home, listen: LISTEN, bootstrap: [], ...args })
    return node
  }
  const close = async (node) => {
    nodes.delete(node)
    await node.close()
  }
  const waitFor = async (what, check, timeoutMs = 60_000) => {
    const end = Date.now() + timeoutMs
    for (;;) {
      const v = await check()
      if (v !== undefined) return v
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  let fleet
  try {
    // --- Setup: A founds the workspace, the VPS joins as untrusted, A restarts with the VPS as bootstrap.
    const homeA = await tmp.make('vps-a')
    let a = await kitsync('A', homeA)
    const v = await kitsync('VPS', await tmp.make('vps-v'), { relay: true })
    const { token: vpsToken } = await a.request('invite', { untrusted: true })
    await v.request('join', { token: vpsToken, name: 'vps' }, { timeoutMs: 60_000 })
    const vAddr = v.info.listen[0]
    await close(a)
    await editWorkspaceConfig(homeA, { maxDevices: 40 })
    a = await kitsync('A', homeA, { bootstrap: [vAddr] })
    await waitFor('A live with the store', async () => ((await a.request('blind')).blindStore?.stores?.some((s) => s.live) ? true : undefined))
    // B joins (directly, on loopback), then restarts knowing only the VPS: A and B meet through the relay.
    const homeB = await tmp.make('vps-b')
    let b = await kitsync('B', homeB, { bootstrap: [vAddr] })
    const { token } = await a.request('invite')
    await b.request('join', { token, name: 'B' }, { timeoutMs: 60_000 })
    await close(b)
    await editWorkspaceConfig(homeB, { bootstrap: [vAddr] })
    b = await kitsync('B', homeB, { bootstrap: [vAddr] })
    const viaRelay = await waitFor('A and B connected through the relay', async () => {
      const d = (await b.request('blind')).devices.find((x) => x.peerId === a.info.peerId)
      return d?.state === 'connected' ? d.address : undefined
    })
    log(`  A and B connected over ${viaRelay}`)

    // --- 1. Latency through the relay, then a direct pair (two more devices) for comparison.
    const relayed = await latency(a, b, 'relay')
    const addressAfter = (await b.request('blind')).devices.find((x) => x.peerId === a.info.peerId)?.address
    const c = await kitsync('C', await tmp.make('vps-c'))
    const d = await kitsync('D', await tmp.make('vps-d'))
    const { token: tokenD } = await c.request('invite')
    await d.request('join', { token: tokenD, name: 'D' }, { timeoutMs: 60_000 })
    const direct = await latency(c, d, 'direct')
    await close(c)
    await close(d)
    const p50 = (s) => round(percentile(s, 50), 3)
    const p99 = (s) => round(percentile(s, 99), 3)
    await measure(
      {
        id: 'relay.latency.p50',
        title: `One small update A -> B through the VPS relay, median of ${LATENCY.count}`,
        unit: 'ms',
        method: `A and B know only the VPS; the connection B saw: ${viaRelay} (after: ${addressAfter})`,
      },
      () => ({ value: p50(relayed), details: { p99: p99(relayed), ...summary(relayed, 3) } }),
    )
    await measure({ id: 'relay.latency.p99', title: 'Same, 99th percentile', unit: 'ms' }, () => p99(relayed))
    await measure(
      { id: 'direct.latency.p50', title: `One small update between two directly connected devices, median of ${LATENCY.count}`, unit: 'ms' },
      () => ({ value: p50(direct), details: { p99: p99(direct), ...summary(direct, 3) } }),
    )
    await measure({ id: 'direct.latency.p99', title: 'Same, 99th percentile', unit: 'ms' }, () => p99(direct))
    await measure({ id: 'relay.latency.ratio.p50', title: 'Relay / direct, medians', unit: '×' }, () => round(p50(relayed) / p50(direct), 2))
    await measure({ id: 'relay.latency.ratio.p99', title: 'Relay / direct, 99th percentiles', unit: '×' }, () => round(p99(relayed) / p99(direct), 2))

    // --- 2. B is away; A makes 10,000 separate updates; A goes; B comes back and catches up from the VPS.
    //     Twice: with the default snapshot policy (the store compacts as it goes), and with
    //     snapshots off, so B receives 10,000 separate encrypted entries.
    const catchUp = async (variant, collection, snapshotPolicy) => {
      a = await kitsync('A', homeA, { bootstrap: [vAddr], ...(snapshotPolicy === undefined ? {} : { snapshotPolicy }) })
      await waitFor('A live with the store', async () => ((await a.request('blind')).blindStore?.stores?.some((s) => s.live) ? true : undefined))
      const t0 = now()
      for (let i = 0; i < CATCHUP.updates; i++) await a.request('set', { collection, key: `k${i}`, value: { i, s: 'catch-up' } })
      const writeMs = now() - t0
      await waitFor(
        'A has uploaded everything',
        async () => {
          const s = (await a.request('blind')).blindStore?.stores?.[0]
          const store = (await v.request('blind')).blindStore
          return s?.live && !s.pending && s.cursor === store?.head ? true : undefined
        },
        120_000,
      )
      const store = (await v.request('blind')).blindStore
      await close(a)
      log(
        `  ${variant}: ${CATCHUP.updates} updates written on A in ${round(writeMs, 0)} ms; the store: head ${store.head}, snapshot covering ${store.snapshotSeq}, ${store.sinceCount} entries after it (${store.sinceBytes} bytes)`,
      )
      const started = now()
      b = await kitsync('B', homeB, { bootstrap: [vAddr], ...(snapshotPolicy === undefined ? {} : { snapshotPolicy }) })
      const startMs = now() - started
      // Polled by record count (reading all 10,000 records every 20 ms took CPU from the
      // catch-up it measures), then every record read once.
      await waitFor(
        'B has every update',
        async () => ((await b.request('blind', { collection, count: true })).records >= CATCHUP.updates ? true : undefined),
        120_000,
      )
      const read = (await b.request('blind', { collection })).records
      if (read < CATCHUP.updates) throw new Error(`B counts ${CATCHUP.updates} records but reads ${read}`)
      const catchupMs = now() - started
      await close(b)
      return {
        value: round(catchupMs, 0),
        details: {
          peerStartMs: round(startMs, 0),
          storeHead: store.head,
          snapshotSeq: store.snapshotSeq,
          entriesAfterSnapshot: store.sinceCount,
          bytesAfterSnapshot: store.sinceBytes,
        },
      }
    }
    await close(b)
    await close(a)
    const method =
      'B restarts with the VPS as only bootstrap while A is offline; time from peer start (process fork) until all records are readable: record count polled every 20 ms through IPC, then every record read once'
    await measure(
      {
        id: 'store.catchup.10k',
        title: `A device catching up ${CATCHUP.updates.toLocaleString('en-US')} updates from the VPS store (default snapshots)`,
        unit: 'ms',
        target: { op: '<=', value: 2000 },
        method,
      },
      () => catchUp('default snapshots', 'catchup', undefined),
    )
    await measure(
      {
        id: 'store.catchup.10k.entries',
        title: `Same, snapshots off: ${CATCHUP.updates.toLocaleString('en-US')} separate encrypted entries`,
        unit: 'ms',
        target: { op: '<=', value: 2000 },
        method,
      },
      () => catchUp('snapshots off', 'catchup2', { entries: 1e12, bytes: 1e15 }),
    )

    // --- 3. VPS memory with 20 devices connected and syncing.
    a = await kitsync('A', homeA, { bootstrap: [vAddr] })
    const homes = []
    const tokens = []
    for (let i = 0; i < FLEET.devices; i++) {
      homes.push(await tmp.make(`vps-f${i}`))
      tokens.push((await a.request('invite')).token)
    }
    fleet = await Fleet.fork()
    const fleetStart = await fleet.request('start', { homes, tokens, bootstrap: [vAddr] }, 300_000)
    log(`  fleet: ${fleetStart.peers} devices started and joined at once, ${fleetStart.caughtUp} caught up when joining`)
    await waitFor('every device live with the store', async () => ((await fleet.request('live')).live >= FLEET.devices ? true : undefined), 120_000).catch(
      async (err) => {
        throw new Error(`${err.message}; devices: ${JSON.stringify(await fleet.request('status').catch(() => 'unknown'))}`)
      },
    )
    const idleMem = await processMemory(v.child.pid)
    // The VPS's RSS sampled every 100 ms while every device writes and until A has it all.
    const samples = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        samples.push((await processMemory(v.child.pid)).rss)
        await new Promise((r) => setTimeout(r, 100))
      }
    })()
    try {
      await fleet.request('write', { collection: 'fleet', count: FLEET.writes }, 300_000)
      await waitFor(
        "A has every device's writes",
        async () => ((await a.request('blind', { collection: 'fleet' })).records >= FLEET.devices * FLEET.writes ? true : undefined),
        120_000,
      )
    } finally {
      sampling = false
      await sampler
    }
    const mem = await processMemory(v.child.pid)
    const vs = (await v.request('blind')).blindStore
    // Devices that know a relay dial every other member through it: n(n-1)/2 circuits on the VPS.
    const fleetStatus = await fleet.request('status')
    const relayedEnds = fleetStatus.reduce((sum, d) => sum + d.relayed, 0)
    const syncPeers = fleetStatus.map((d) => d.connected.length)
    const mb = (b) => round(b / 1024 / 1024, 1)
    await measure(
      {
        id: 'vps.rss.20',
        title: `VPS resident memory with ${FLEET.devices} devices connected and syncing (largest sample while they write)`,
        unit: 'MB',
        target: { op: '<=', value: 150 },
        method: `${FLEET.devices} devices, each a whole Peer (own identity, LevelDB store, libp2p node, TCP connection to the VPS) in one child process (scripts/bench/vps-devices.js), + A; all ${FLEET.devices} live with the blind store; each wrote ${FLEET.writes} records (all reached A); VmRSS of the VPS sampled every 100 ms during the writes (${samples.length} samples)`,
      },
      () => ({
        value: mb(Math.max(...samples, mem.rss)),
        details: {
          relayedConnectionEnds: relayedEnds,
          syncPeersPerDeviceMedian: percentile(syncPeers, 50),
          idleConnectedMB: mb(idleMem.rss),
          afterMB: mb(mem.rss),
          medianSampleMB: mb(percentile(samples, 50)),
          peakHwmMB: mb(mem.hwm),
          storeSessions: vs.sessions,
          storeHead: vs.head,
        },
      }),
    )
    note(
      'vps: the relay and direct latencies run on loopback in the same run; on loopback DCUtR has no public address to punch to, so the relayed connection stays relayed.',
    )
  } finally {
    await fleet?.close()
    for (const node of [...nodes]) await close(node).catch(() => undefined)
  }
}

/** Sequential small updates writer -> reader, each timed from the write until the reader sees it. */
async function latency(writer, reader, tag) {
  await reader.request('watch', { tag, key: tag })
  const samples = []
  for (let i = 0; i < LATENCY.warmup + LATENCY.count; i++) {
    const seen = reader.nextEvent((e) => e.event === 'seen' && e.tag === tag, 10_000, `${tag} update ${i} not seen in 10 s`)
    seen.catch(() => undefined)
    const { t0 } = await writer.request('set', { collection: 'lat', key: tag, value: { i } })
    const { t } = await seen
    if (i >= LATENCY.warmup) samples.push(t - t0)
  }
  await reader.request('unwatch')
  return samples
}

class Fleet {
  static async fork() {
    const child = fork(join(ROOT, 'scripts', 'bench', 'vps-devices.js'), [], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    const fleet = new Fleet(child)
    await withTimeout(new Promise((resolve) => child.once('message', resolve)), 15_000, 'the device fleet did not start')
    return fleet
  }
  constructor(child) {
    this.child = child
    this.nextId = 1
    this.pending = new Map()
    this.output = ''
    child.stdout.setEncoding('utf8').on('data', (s) => (this.output = (this.output + s).slice(-4000)))
    child.stderr.setEncoding('utf8').on('data', (s) => (this.output = (this.output + s).slice(-4000)))
    child.on('message', (msg) => {
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      if (msg.error !== undefined) p.reject(new Error(msg.error))
      else p.resolve(msg.result)
    })
    this.exited = new Promise((resolve) => child.on('exit', resolve))
  }
  request(cmd, args = {}, timeoutMs = 30_000) {
    const id = this.nextId++
    const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }))
    this.child.send({ id, cmd, args })
    return withTimeout(reply, timeoutMs, `fleet: ${cmd} did not answer (${this.output.slice(-300)})`)
  }
  async close() {
    if (this.child.exitCode !== null) return
    await this.request('stop', {}, 60_000).catch(() => this.child.kill('SIGKILL'))
    if (this.child.connected) this.child.disconnect()
    await withTimeout(this.exited, 10_000, 'fleet did not exit').catch(() => this.child.kill('SIGKILL'))
  }
}
