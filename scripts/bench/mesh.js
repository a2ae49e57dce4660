// Benchmark section "mesh": sync between kitsync peers over libp2p (TCP + Noise + Yamux) on
// loopback, against the same workloads through a central y-websocket server; and the memory of
// idle `kitsync peer start` processes. Every peer and client listens on or dials 127.0.0.1
// only, with mDNS off: nothing leaves the machine.
//
// Each kitsync peer and each y-websocket client runs in its own process (scripts/bench/
// mesh-peer.js, driven over IPC), so sender and receiver do not share an event loop. Times are
// taken with process.hrtime (CLOCK_MONOTONIC, shared by all processes of the machine): the
// sender notes when it writes, the receiver when the change is visible there.
import { fork, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { cli, editWorkspaceConfig, LOOPBACK_PEER_ARGS, median, percentile, processMemory, ROOT, round, sleep, startPeer, summary, withTimeout } from './lib.js'

export const id = 'mesh'
export const title = 'Mesh: sync between peers on loopback, against y-websocket'

// BENCH_QUICK=1 divides the workloads by 10 (figures then do not compare with the targets).
const SCALE = process.env.BENCH_QUICK === '1' ? 0.1 : 1
const n = (count) => Math.max(1, Math.round(count * SCALE))

// Latency: `cold` updates right after the peers connected (recorded), `warmup` more (not
// recorded), then `count` in steady state; each phase in blocks of `block`, alternating systems.
// `count` is 20,000 for the tail: a 99th percentile of 5,000 samples is the 50th largest, and
// how many samples land above the true percentile varies by about +-7 of 50 (binomial), which
// moved each system's p99 by some 10% from run to run here, so their ratio swung between 0.70
// and 1.15 with nothing changed. Of 20,000 samples (the 200th largest, +-14 of 200) it moves
// about half as much; 15,000 more sequential updates per system cost some 10 s.
const LATENCY = { cold: n(1_000), warmup: n(2_000), count: n(20_000), block: n(100) }
const BURST = { count: n(10_000), warmup: n(1_000), trials: 5 }
const LINE = { peers: 5, count: n(10_000), trials: 3 }
const BIG = { bytes: Math.round(10 * 1024 * 1024 * SCALE), joiners: 5 }
const IDLE = { peers: 3, settleMs: 3_000 }
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
const MESH_PEER = join(ROOT, 'scripts', 'bench', 'mesh-peer.js')
const WS_SERVER = join(ROOT, 'node_modules', '@y', 'websocket-server', 'src', 'server.js')
const MB = 1024 * 1024

export async function run(ctx) {
  const { measure, note, tmp, log } = ctx
  const nodes = new Set()
  const spawnNode = async (name) => {
    const node = await BenchNode.fork(name)
    nodes.add(node)
    return node
  }
  const closeNode = async (node) => {
    nodes.delete(node)
    return node.close()
  }
  const kitsyncNode = async (name, bootstrap = [], home = undefined) => {
    const node = await spawnNode(name)
    node.info = await node.request('kitsync-start', { home: home ?? (await tmp.make(`mesh-${name}`)), listen: LISTEN, bootstrap })
    return node
  }
  const wsNode = async (name, url, rooms, args = {}) => {
    const node = await spawnNode(name)
    node.info = await node.request('ws-start', { url, rooms, ...args }, { timeoutMs: 60_000 })
    return node
  }
  /** `joiner` joins the workspace of `inviter` with a fresh token. */
  const pair = async (inviter, joiner, args = {}) => {
    const { token } = await inviter.request('invite')
    return joiner.request('join', { token, name: joiner.name, ...args }, { timeoutMs: 60_000 })
  }
  const figures = {}
  let server

  try {
    log('  two kitsync peers (A, B) and a y-websocket server with two clients (wsA, wsB), each in its own process; kitsync and y-websocket runs interleaved')
    server = await startWsServer()
    const url = `ws://127.0.0.1:${server.port}`
    const a = await kitsyncNode('A')
    const b = await kitsyncNode('B')
    const paired = await pair(a, b)
    if (!paired.caughtUp) throw new Error('B did not catch up with A when joining')
    const wa = await wsNode('wsA', url, ['lat', 'burst'])
    const wb = await wsNode('wsB', url, ['lat', 'burst'])
    const systems = { kitsync: [a, b], ws: [wa, wb] }

    // -------------------------------------------------------------------------------------
    // 1. Latency of one small update.
    const latency = await interleavedLatency(systems)
    const steady = `${LATENCY.count.toLocaleString('en-US')} sequential updates in steady state (after ${(LATENCY.cold + LATENCY.warmup).toLocaleString('en-US')})`
    const rounds = `rounds of ${LATENCY.block}, each on kitsync and then on y-websocket, so noise hits both alike`
    figures.latency = await measure(
      {
        id: 'latency.p50',
        title: `One small update on A visible on B, median of ${steady}`,
        unit: 'ms',
        target: { op: '<=', value: 2 },
        method:
          'Two kitsync peers (Peer.start: LevelDB home, TCP+Noise+Yamux on 127.0.0.1, no mDNS, no control socket), each in its own child process with the V8 setting of `kitsync peer start` (src/cli/young-generation.ts), paired by createInvite/join. ' +
          `A calls workspace.set('lat', 'lat', { i, s: 'x' }) (durability not awaited); B's workspace emits 'change' with source 'remote'. ` +
          `Latency = hrtime on B at that event - hrtime on A just before set (CLOCK_MONOTONIC, shared by both processes). Each update waits for the previous one to be seen. ` +
          `Phases: the first ${LATENCY.cold.toLocaleString('en-US')} updates after the peers connected (latency.cold.p50), ${LATENCY.warmup.toLocaleString('en-US')} more not recorded, ` +
          `then the ${LATENCY.count.toLocaleString('en-US')} of this figure; every phase in ${rounds} (ywebsocket.latency.p50).`,
      },
      () => latencyFigure(latency.kitsync.steady),
    )
    await measure(
      {
        id: 'latency.p99',
        title: 'Same, 99th percentile',
        unit: 'ms',
        target: { op: '<=', value: 10 },
        method: 'The samples of latency.p50, nearest-rank 99th percentile',
      },
      () => p99Figure(latency.kitsync.steady),
    )
    figures.latencyCold = await measure(
      {
        id: 'latency.cold.p50',
        title: `Same, median of the first ${LATENCY.cold.toLocaleString('en-US')} updates after the peers connected`,
        unit: 'ms',
        method:
          "The cold phase of latency.p50: V8 still compiles the code of the path (TurboFan on its background threads, which share the machine's 2 cores with the other processes), " +
          'so these figures measure the warm-up of each process as much as the sync path. Details: p99.',
      },
      () => latencyFigure(latency.kitsync.cold),
    )
    figures.wsLatency = await measure(
      {
        id: 'ywebsocket.latency.p50',
        title: `y-websocket: one small update on client A visible on client B, median of ${steady}`,
        unit: 'ms',
        method:
          `@y/websocket-server 0.1.1 (its own src/server.js in its own process, HOST=127.0.0.1, no persistence); y-websocket 3 WebsocketProvider clients A and B in separate processes ` +
          "(ws as WebSocket; disableBc, so every update goes through the server), room 'lat' holding a RecordCollection (the records layout kitsync uses). " +
          "A: collection.set('lat', { i, s: 'x' }); B: the collection's change callback with a remote origin. Same timing and phases as latency.p50, interleaved with it.",
      },
      () => latencyFigure(latency.ws.steady),
    )
    await measure(
      { id: 'ywebsocket.latency.p99', title: 'y-websocket: same, 99th percentile', unit: 'ms', method: 'The samples of ywebsocket.latency.p50' },
      () => p99Figure(latency.ws.steady),
    )
    figures.wsLatencyCold = await measure(
      {
        id: 'ywebsocket.latency.cold.p50',
        title: `y-websocket: same, median of the first ${LATENCY.cold.toLocaleString('en-US')} updates after the clients connected`,
        unit: 'ms',
        method: 'The cold phase of ywebsocket.latency.p50. Details: p99.',
      },
      () => latencyFigure(latency.ws.cold),
    )

    // -------------------------------------------------------------------------------------
    // 2. Bursts of separate transactions.
    const bursts = await interleavedBursts(systems)
    figures.burst = await measure(
      {
        id: 'burst.unawaited',
        title: `${BURST.count.toLocaleString('en-US')} separate transactions on A (un-awaited sets) until all visible on B`,
        unit: 'ms',
        target: { op: '<=', value: 250 },
        method:
          `The peers of latency.p50. A calls workspace.set('burst', prefix + i, { n: i, s: 'burst' }) ${BURST.count.toLocaleString('en-US')} times without awaiting (each set its own Yjs ` +
          "transaction; the store can group-commit and the sync engine merges the tick's updates into one frame), then awaits them all. " +
          `Time = hrtime on B when the last of the ${BURST.count.toLocaleString('en-US')} new keys was seen in a remote 'change' event - hrtime on A before the first set. ` +
          `One warm-up burst of ${BURST.warmup.toLocaleString('en-US')}, then ${BURST.trials} trials on new keys, alternating with ywebsocket.burst; value = median trial. ` +
          'Details per trial: issueMs (sets issued), writerDoneMs (all durable on A), firstSeenMs, allSeenMs.',
      },
      () => burstFigure(bursts.kitsync),
    )
    figures.wsBurst = await measure(
      {
        id: 'ywebsocket.burst',
        title: `y-websocket: ${BURST.count.toLocaleString('en-US')} separate transactions on client A until all visible on client B`,
        unit: 'ms',
        method:
          `Room 'burst'. A: ${BURST.count.toLocaleString('en-US')} collection.set calls in one go (one transaction and one websocket message each; writerDoneMs = all issued). ` +
          'Same timing, warm-up and trials as burst.unawaited, interleaved with it.',
      },
      () => burstFigure(bursts.ws),
    )
    await measure(
      {
        id: 'burst.awaited',
        title: `Diagnostic: ${BURST.count.toLocaleString('en-US')} awaited sets on A (each durable before the next) until all visible on B`,
        unit: 'ms',
        method:
          'As burst.unawaited, but A awaits each set before the next: each write is its own LevelDB batch and, as the sync engine flushes on the next event-loop turn, mostly its own frame. One trial.',
      },
      () => burstOnce(a, b, 'burst', 'awaited', BURST.count, true),
    )
    const memory = {}
    for (const [name, node] of Object.entries({ a, b, wa, wb })) memory[name] = round((await node.request('memory')).rss / MB)
    figures.twoNodeRssMB = memory
    for (const node of [a, b, wa, wb]) await closeNode(node)

    // -------------------------------------------------------------------------------------
    // 4. A new device joins a workspace of 10 MB (and a new client joins a 10 MB room).
    log(`  catch-up: ${round(BIG.bytes / MB)} MiB of records; ${BIG.joiners} kitsync joiners and ${BIG.joiners} y-websocket clients, interleaved`)
    const catchUp = await interleavedCatchUp({ kitsyncNode, wsNode, pair, closeNode, url, serverPid: server.pid, tmp })
    figures.catchUp = await measure(
      {
        id: 'catchUp.10MB',
        title: `New device joins a workspace of ${round(BIG.bytes / MB)} MiB of JSON records: join() until caught up and all records read`,
        unit: 'ms',
        target: { op: '<=', value: 1500 },
        method:
          `Peer A (own process) writes about ${round(BIG.bytes / MB)} MiB of JSON as records of ~1 KB in collection 'big' (scripts/bench/mesh-data.js; not timed). ` +
          'A fresh peer J (own process, empty home, already started) receives a token from A.createInvite(); time = from J calling peer.join(token) (pairing protocol, ' +
          'workspace adoption, sync session, state-vector exchange, the whole collection as one update, applied and appended to the LevelDB log) until join resolved caught up and ' +
          `J read workspace.getAll('big') with every record. ${BIG.joiners} joiners, each a new process and home, alternating with ywebsocket.catchUp.10MB; value = median.`,
      },
      async () => catchUp.kitsync(),
    )
    figures.wsCatchUp = await measure(
      {
        id: 'ywebsocket.catchUp.10MB',
        title: `y-websocket: a new client gets a room of ${round(BIG.bytes / MB)} MiB of JSON records and reads them all`,
        unit: 'ms',
        method:
          "A client fills room 'big' with the records of catchUp.10MB and stays connected; a check client waits until the server holds them all. " +
          `Then ${BIG.joiners} fresh clients, each in a new process: time = from new WebsocketProvider(...) until its sync event (the server's sync step 2 applied) and ` +
          'collection.entries() read every record. No persistence on this side (kitsync writes its copy to LevelDB). Value = median.',
      },
      async () => catchUp.ws(),
    )
    await measure(
      {
        id: 'ywebsocket.serverMemory',
        title: 'y-websocket server memory (RSS) after the three workloads',
        unit: 'MB',
        method:
          "VmRSS of the server process from /proc/PID/status, after the last catch-up client read its copy and disconnected (rooms 'lat', 'burst' and 'big' in memory: " +
          'without persistence the server keeps a room as long as it runs). Details: VmHWM (peak), and the RSS of the kitsync peers for comparison.',
      },
      async () => {
        const m = catchUp.serverMemory
        if (m === undefined) throw new Error('not measured: the catch-up workload failed')
        return {
          value: round(m.rss / MB),
          details: { peakMB: round(m.hwm / MB), kitsyncRssMB: { twoPeerRuns: figures.twoNodeRssMB, catchUp: catchUp.kitsyncRssMB } },
        }
      },
    )
    await server.stop()
    server = undefined

    const ratio = async (figureId, what, kitsyncFigure, wsFigure, pick = (f) => f.value, targeted = true) => {
      await measure(
        {
          id: figureId,
          title: `kitsync / y-websocket: ${what}`,
          unit: '×',
          ...(targeted ? { target: { op: '<=', value: 1 } } : {}),
          method: 'kitsync figure divided by the y-websocket figure (≤ 1: kitsync is not slower)' + (targeted ? '' : '; no target: see latency.cold.p50'),
        },
        async () => {
          if (kitsyncFigure.error !== undefined || wsFigure.error !== undefined) throw new Error('a figure of the pair failed')
          return { value: round(pick(kitsyncFigure) / pick(wsFigure), 3), details: { kitsync: pick(kitsyncFigure), yWebsocket: pick(wsFigure) } }
        },
      )
    }
    await ratio('ratio.latencyP50', 'latency, median', figures.latency, figures.wsLatency)
    await ratio('ratio.latencyP99', 'latency, 99th percentile', figures.latency, figures.wsLatency, (f) => f.details.p99)
    await ratio('ratio.latencyColdP50', 'latency of the cold phase, median', figures.latencyCold, figures.wsLatencyCold, undefined, false)
    await ratio('ratio.latencyColdP99', 'latency of the cold phase, 99th percentile', figures.latencyCold, figures.wsLatencyCold, (f) => f.details.p99, false)
    await ratio('ratio.burst', `${BURST.count.toLocaleString('en-US')}-transaction burst`, figures.burst, figures.wsBurst)
    await ratio('ratio.catchUp', `${round(BIG.bytes / MB)} MiB catch-up`, figures.catchUp, figures.wsCatchUp)
  } catch (err) {
    // A failure outside a figure (a process that does not start, pairing): recorded, and the
    // line and memory figures still run.
    await measure({ id: 'setup', title: 'Set-up of the two-peer, y-websocket and catch-up workloads', unit: '' }, () => {
      throw err
    })
  } finally {
    for (const node of [...nodes]) await node.close().catch(() => undefined)
    await server?.stop()
  }

  try {
    // -------------------------------------------------------------------------------------
    // 3. A line of five peers.
    log(`  a line of ${LINE.peers} kitsync peers, each connected to its neighbours only`)
    await measure(
      {
        id: 'line5.burst',
        title: `Line of ${LINE.peers} peers: ${LINE.count.toLocaleString('en-US')} separate transactions on P1 until all visible on P${LINE.peers}`,
        unit: 'ms',
        target: { op: '<=', value: 1000 },
        method:
          `${LINE.peers} kitsync peers, each in its own process (sharing the machine's 2 cores). P(k+1) joins with a token from P(k), so the token's address is its only ` +
          'bootstrap address and the peers form a line P1-P2-...-P5 (checked: each has only its neighbours connected). ' +
          `P1 makes ${LINE.count.toLocaleString('en-US')} un-awaited sets (as burst.unawaited); each peer relays to the next. ` +
          `Time = hrtime on P${LINE.peers} when the last key was seen - hrtime on P1 before the first set. One warm-up burst, then ${LINE.trials} trials; value = median.`,
      },
      async () => {
        const line = []
        for (let i = 0; i < LINE.peers; i++) line.push(await kitsyncNode(`P${i + 1}`))
        for (let i = 1; i < LINE.peers; i++) {
          const r = await pair(line[i - 1], line[i])
          if (!r.caughtUp) throw new Error(`P${i + 1} did not catch up with P${i} when joining`)
        }
        const topology = await waitForLine(line)
        const first = line[0]
        const last = line[line.length - 1]
        await burstOnce(first, last, 'line', 'warm', BURST.warmup, false)
        const trials = []
        for (let t = 0; t < LINE.trials; t++) trials.push(await burstOnce(first, last, 'line', `t${t}_`, LINE.count, false))
        const rss = []
        for (const p of line) rss.push(round((await p.request('memory')).rss / MB))
        for (const p of line) await closeNode(p)
        const ms = trials.map((t) => t.value)
        return { value: round(median(ms)), details: { trialsMs: ms, perTrial: trials.map((t) => t.details), connectedPerPeer: topology, rssMBPerPeer: rss } }
      },
    )
  } finally {
    for (const node of [...nodes]) await node.close().catch(() => undefined)
  }

  // ---------------------------------------------------------------------------------------
  // 6. Memory of idle peers, as real `kitsync peer start` processes.
  await measure(
    {
      id: 'memory.idle3',
      title: `Idle peer memory (RSS) with ${IDLE.peers} connected peers: the largest of the ${IDLE.peers}`,
      unit: 'MB',
      target: { op: '<=', value: 100 },
      method:
        `${IDLE.peers} processes of node bin/kitsync.js peer start --json ${LOOPBACK_PEER_ARGS.join(' ')}, each with its own home. The first is started; each next one is paired with ` +
        '`kitsync pair --json` (through the running first peer) and `kitsync join TOKEN --listen /ip4/127.0.0.1/tcp/0 --no-mdns`, then started with --bootstrap of the peers started before it, ' +
        `so that all ${IDLE.peers} are connected to each other. Once \`kitsync peers --json\` shows every other device connected on each of them, they idle ${IDLE.settleMs / 1000} s; then VmRSS ` +
        'from /proc/PID/status. Value = the largest; details: each peer, and VmHWM (peak). MB = 2^20 bytes.',
    },
    () => idleMemory(tmp),
  )

  note(
    'Processes: every kitsync peer and every y-websocket client of this section runs in its own child process (scripts/bench/mesh-peer.js, forked and driven over IPC); ' +
      'the y-websocket server is its own process too. The machine has 2 cores, which the processes share. All addresses are 127.0.0.1 and mDNS is off. ' +
      'BENCH_CPU_PROF=DIR writes a V8 CPU profile of each of these child processes under DIR/<node name>/ (sampled every BENCH_CPU_INTERVAL µs, default 1000).',
  )
  note(
    'Compared workloads: on the kitsync side every write goes through LocalWorkspace.set and is also appended to LevelDB on both peers (not awaited in the latency run); ' +
      'the y-websocket side keeps documents in memory only (clients and server: no persistence). Both sides hold the records in the same layout (RecordCollection on a Y.Doc): ' +
      'an object record { n, s } is 3 Y.Map entries (header and one per field). A y-websocket client observes its collection only when a workload watches for changes (the latency and burst receivers), ' +
      "kitsync's LocalWorkspace always does.",
  )
}

// -----------------------------------------------------------------------------------------
// Workloads

/**
 * Latency samples of both systems, { cold, steady } each: LATENCY.cold updates right after
 * connecting, LATENCY.warmup more (not kept), then LATENCY.count; every phase in blocks of
 * LATENCY.block sequential updates, one block on each system in turn, so noise hits both alike.
 */
async function interleavedLatency(systems) {
  const out = {}
  for (const [name, [, reader]] of Object.entries(systems)) {
    await reader.request('watch', { tag: 'lat', key: 'lat' })
    out[name] = { cold: [], steady: [], next: 0 }
  }
  const block = async (name, count, samples) => {
    const [writer, reader] = systems[name]
    const state = out[name]
    try {
      for (let k = 0; k < count; k++) {
        const i = state.next++
        const seen = reader.nextEvent((e) => e.event === 'seen' && e.tag === 'lat', 10_000, `update ${i} was not seen within 10 s`)
        seen.catch(() => undefined) // awaited below; not unhandled if the write fails first
        const { t0 } = await writer.request('set', { collection: 'lat', key: 'lat', value: { i, s: 'x' } })
        const { t } = await seen
        samples?.push(t - t0)
      }
    } catch (err) {
      state.error ??= err
    }
  }
  const phase = async (count, keep) => {
    for (let done = 0; done < count; done += LATENCY.block) {
      for (const name of Object.keys(systems)) if (out[name].error === undefined) await block(name, Math.min(LATENCY.block, count - done), keep?.(out[name]))
    }
  }
  await phase(LATENCY.cold, (state) => state.cold)
  await phase(LATENCY.warmup, undefined)
  await phase(LATENCY.count, (state) => state.steady)
  for (const [, reader] of Object.values(systems)) await reader.request('unwatch')
  return Object.fromEntries(
    Object.entries(out).map(([name, { cold, steady, error }]) => [name, { cold: { samples: cold, error }, steady: { samples: steady, error } }]),
  )
}

function latencyFigure(result) {
  if (result.error !== undefined) throw result.error
  const samples = result.samples
  return {
    value: round(percentile(samples, 50), 3),
    details: { p99: round(percentile(samples, 99), 3), ...summary(samples, 3), mean: round(samples.reduce((sum, x) => sum + x, 0) / samples.length, 3) },
  }
}

function p99Figure(result) {
  if (result.error !== undefined) throw result.error
  const samples = result.samples
  return { value: round(percentile(samples, 99), 3), details: { p999: round(percentile(samples, 99.9), 3), max: round(Math.max(...samples), 3) } }
}

/** A warm-up burst on each system, then BURST.trials rounds of one burst on each. */
async function interleavedBursts(systems) {
  const out = {}
  for (const name of Object.keys(systems)) out[name] = { trials: [] }
  const one = async (name, prefix, count) => {
    const [writer, reader] = systems[name]
    try {
      return await burstOnce(writer, reader, 'burst', prefix, count, false)
    } catch (err) {
      out[name].error ??= err
      return undefined
    }
  }
  for (const name of Object.keys(systems)) await one(name, 'warm', BURST.warmup)
  for (let t = 0; t < BURST.trials; t++) {
    for (const name of Object.keys(systems)) {
      if (out[name].error !== undefined) continue
      const trial = await one(name, `t${t}_`, BURST.count)
      if (trial !== undefined) out[name].trials.push(trial)
    }
  }
  return out
}

function burstFigure(result) {
  if (result.error !== undefined) throw result.error
  const ms = result.trials.map((t) => t.value)
  return { value: round(median(ms)), details: { trialsMs: ms, perTrial: result.trials.map((t) => t.details) } }
}

/**
 * The 10 MB catch-up on both systems: a kitsync host and a y-websocket room are filled with
 * the same records, then BIG.joiners rounds of one new kitsync device and one new client.
 * Returns functions that give each system's figure (or throw its error).
 */
async function interleavedCatchUp({ kitsyncNode, wsNode, pair, closeNode, url, serverPid, tmp }) {
  const state = { kitsync: { runs: [] }, ws: { runs: [] } }
  const guard = async (name, fn) => {
    if (state[name].error !== undefined) return
    try {
      await fn()
    } catch (err) {
      state[name].error = err
    }
  }
  let host
  let filler
  const result = { kitsyncRssMB: {} }
  try {
    await guard('kitsync', async () => {
      // The joiners stay members after their run: the host needs a device limit above the
      // default of 5, which only workspace.json sets (so: start once, stop, set it, start again).
      const home = await tmp.make('mesh-A2')
      await closeNode(await kitsyncNode('A2', [], home))
      await editWorkspaceConfig(home, { maxDevices: BIG.joiners + 1 })
      host = await kitsyncNode('A2', [], home)
      state.kitsync.fill = await host.request('fill', { collection: 'big', bytes: BIG.bytes }, { timeoutMs: 120_000 })
    })
    await guard('ws', async () => {
      filler = await wsNode('wsFill', url, ['big'])
      state.ws.fill = await filler.request('fill', { collection: 'big', bytes: BIG.bytes }, { timeoutMs: 120_000 })
      const check = await wsNode('wsCheck', url, ['big'], { waitForRecords: state.ws.fill.records })
      await closeNode(check)
    })
    for (let i = 0; i < BIG.joiners; i++) {
      await guard('kitsync', async () => {
        const fill = state.kitsync.fill
        const j = await kitsyncNode(`J${i + 1}`)
        const r = await pair(host, j, { collection: 'big', expectRecords: fill.records })
        if (!r.caughtUp) throw new Error(`joiner ${i + 1} did not report caught up`)
        if (r.jsonBytes < fill.jsonBytes * 0.95) throw new Error(`joiner ${i + 1} read ${r.jsonBytes} bytes of JSON, the host wrote ${fill.jsonBytes}`)
        r.rss = (await j.request('memory')).rss
        state.kitsync.runs.push(r)
        await closeNode(j)
      })
      await guard('ws', async () => {
        const fill = state.ws.fill
        const j = await wsNode(`wsJ${i + 1}`, url, ['big'], { read: true })
        const r = j.info
        if (r.records !== fill.records) throw new Error(`client ${i + 1} read ${r.records} records, the filler wrote ${fill.records}`)
        r.rss = (await j.request('memory')).rss
        state.ws.runs.push(r)
        await closeNode(j)
      })
    }
    if (state.ws.error === undefined) result.serverMemory = await processMemory(serverPid)
  } finally {
    if (host !== undefined) {
      result.kitsyncRssMB.host = round((await host.request('memory').catch(() => ({ rss: NaN }))).rss / MB)
      await closeNode(host)
    }
    if (filler !== undefined) await closeNode(filler)
  }
  result.kitsync = () => {
    const s = state.kitsync
    if (s.error !== undefined) throw s.error
    const totals = s.runs.map((r) => r.totalMs)
    return {
      value: round(median(totals)),
      details: {
        runsMs: totals.map((x) => round(x)),
        records: s.fill.records,
        jsonBytes: s.fill.jsonBytes,
        fillMs: round(s.fill.fillMs),
        perRun: s.runs.map((r) => ({
          joinMs: round(r.joinMs),
          readAllMs: round(r.readMs),
          syncSessionHelloAtMs: r.helloAt.map((x) => round(x)),
          caughtUpAtMs: r.caughtUpAt.map((x) => round(x)),
          joinerRssMB: round(r.rss / MB),
        })),
        hostRssMB: result.kitsyncRssMB.host,
      },
    }
  }
  result.ws = () => {
    const s = state.ws
    if (s.error !== undefined) throw s.error
    const totals = s.runs.map((r) => r.totalMs)
    return {
      value: round(median(totals)),
      details: {
        runsMs: totals.map((x) => round(x)),
        records: s.fill.records,
        jsonBytes: s.fill.jsonBytes,
        fillMs: round(s.fill.fillMs),
        perRun: s.runs.map((r) => ({ untilSyncedMs: round(r.connectMs), readAllMs: round(r.readMs), clientRssMB: round(r.rss / MB) })),
      },
    }
  }
  return result
}

/** `count` sets of new keys on `writer`; ms until `reader` saw them all. */
async function burstOnce(writer, reader, collection, prefix, count, awaited) {
  const tag = `${collection}/${prefix}`
  await reader.request('watch', { tag, prefix, count })
  const reached = reader.nextEvent((e) => e.event === 'reached' && e.tag === tag, 60_000, `${count} updates did not all arrive within 60 s`)
  reached.catch(() => undefined) // awaited below; not unhandled if the burst fails first
  const w = await writer.request('burst', { collection, prefix, count, awaited }, { timeoutMs: 60_000 })
  const r = await reached
  return {
    value: round(r.t - w.t0),
    details: {
      issueMs: round(w.issuedAt - w.t0),
      writerDoneMs: round(w.doneAt - w.t0),
      firstSeenMs: round(r.first - w.t0),
      allSeenMs: round(r.t - w.t0),
    },
  }
}

/** Wait until the peers of a line have exactly their neighbours connected; returns the counts. */
async function waitForLine(line) {
  const expected = line.map((_, i) => (i === 0 || i === line.length - 1 ? 1 : 2))
  const deadline = performance.now() + 20_000
  for (;;) {
    const counts = []
    for (const p of line) counts.push((await p.request('status')).connected)
    if (counts.every((c, i) => c === expected[i])) return counts
    if (performance.now() > deadline)
      throw new Error(`the line did not form within 20 s: connected sessions per peer ${JSON.stringify(counts)}, expected ${JSON.stringify(expected)}`)
    await sleep(100)
  }
}

/**
 * Real `kitsync peer start` processes, paired with the CLI and all connected; their RSS once
 * idle. `seed({ homes, cli })`, when given, runs once all are connected (the storage section
 * writes its small data there), before the idle time.
 */
export async function idleMemory(tmp, { seed } = {}) {
  const peers = []
  const started = performance.now()
  try {
    const homes = []
    for (let i = 0; i < IDLE.peers; i++) homes.push(await tmp.make(`idle${i}`))
    peers.push(await startPeer(homes[0]))
    for (let i = 1; i < IDLE.peers; i++) {
      const { token } = JSON.parse(await cli(homes[0], ['pair', '--json']))
      await cli(homes[i], ['--json', 'join', token, '--name', `idle${i}`, ...LOOPBACK_PEER_ARGS])
      const bootstrap = peers.slice(1).flatMap((p) => p.started.listen.flatMap((a) => ['--bootstrap', a]))
      peers.push(await startPeer(homes[i], [...LOOPBACK_PEER_ARGS, ...bootstrap]))
    }
    const deadline = performance.now() + 30_000
    let states
    for (;;) {
      states = []
      for (const home of homes) {
        const devices = JSON.parse(await cli(home, ['--json', 'peers']))
        states.push(devices.filter((d) => d.state !== 'this device').map((d) => d.state))
      }
      if (states.every((s) => s.length === IDLE.peers - 1 && s.every((x) => x === 'connected'))) break
      if (performance.now() > deadline) throw new Error(`the peers did not all connect within 30 s: ${JSON.stringify(states)}`)
      await sleep(200)
    }
    const connectedMs = performance.now() - started
    const seeded = seed === undefined ? undefined : await seed({ homes, cli })
    await sleep(IDLE.settleMs)
    const memory = []
    for (const p of peers) memory.push(await processMemory(p.pid))
    const rss = memory.map((m) => round(m.rss / MB))
    return {
      value: Math.max(...rss),
      details: {
        rssMB: rss,
        peakMB: memory.map((m) => round(m.hwm / MB)),
        setupUntilAllConnectedMs: round(connectedMs),
        otherDevicesStatePerPeer: states,
        ...(seeded === undefined ? {} : { seeded }),
      },
    }
  } finally {
    for (const p of peers) await p.stop().catch(() => undefined)
  }
}

// -----------------------------------------------------------------------------------------
// Processes

/**
 * A mesh-peer.js child: request/reply over IPC, plus a buffer of the events it sends.
 * `extension`: path of a module whose `commands(ctx)` adds commands to the child (other sections).
 */
export class BenchNode {
  static async fork(name, { extension } = {}) {
    const profile = process.env.BENCH_CPU_PROF
    const execArgv =
      profile === undefined
        ? []
        : ['--cpu-prof', '--cpu-prof-interval', process.env.BENCH_CPU_INTERVAL ?? '1000', `--cpu-prof-dir=${join(resolve(profile), name)}`]
    const child = fork(MESH_PEER, extension === undefined ? [] : [extension], { cwd: ROOT, execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    const node = new BenchNode(name, child)
    await withTimeout(
      node.nextEvent((e) => e.event === 'ready', 15_000),
      15_000,
      `${name} did not start`,
    )
    return node
  }

  constructor(name, child) {
    this.name = name
    this.child = child
    this.output = ''
    this.nextId = 1
    this.pending = new Map()
    this.events = []
    this.waiters = new Set()
    const keep = (s) => {
      this.output = (this.output + s).slice(-4000)
    }
    child.stdout.setEncoding('utf8').on('data', keep)
    child.stderr.setEncoding('utf8').on('data', keep)
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
    void this.exited.then(({ code, signal }) => {
      const err = new Error(`${name} exited with ${signal ?? code}: ${this.output.trim().slice(-500)}`)
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
      for (const w of this.waiters) w.reject(err)
      this.waiters.clear()
    })
    child.on('message', (msg) => this.onMessage(msg))
  }

  onMessage(msg) {
    if (msg.id !== undefined) {
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      if (msg.error !== undefined) p.reject(new Error(`${this.name}: ${msg.error}`))
      else p.resolve(msg.result)
      return
    }
    for (const w of this.waiters) {
      if (w.match(msg)) {
        this.waiters.delete(w)
        w.resolve(msg)
        return
      }
    }
    this.events.push(msg)
  }

  request(cmd, args = {}, { timeoutMs = 30_000 } = {}) {
    const id = this.nextId++
    const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }))
    this.child.send({ id, cmd, args })
    return withTimeout(reply, timeoutMs, `${this.name}: ${cmd} did not answer within ${timeoutMs / 1000} s`).finally(() => this.pending.delete(id))
  }

  /** The first event (buffered or to come) that `match`es. */
  nextEvent(match, timeoutMs, message = 'event did not come') {
    const i = this.events.findIndex(match)
    if (i >= 0) return Promise.resolve(this.events.splice(i, 1)[0])
    let waiter
    const p = new Promise((resolve, reject) => {
      waiter = { match, resolve, reject }
      this.waiters.add(waiter)
    })
    return withTimeout(p, timeoutMs, `${this.name}: ${message}`).finally(() => this.waiters.delete(waiter))
  }

  /** Stop the node (peer.stop()), end the process; SIGKILL if it does not end in 10 s. */
  async close() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    try {
      await this.request('stop', {}, { timeoutMs: 10_000 })
    } catch {
      // killed below if it does not go
    }
    if (this.child.connected) this.child.disconnect()
    try {
      await withTimeout(this.exited, 10_000, `${this.name} did not exit`)
    } catch {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }
}

/** @y/websocket-server's own server.js on 127.0.0.1 and a free port, in its own process. */
async function startWsServer() {
  const port = await freePort()
  const child = spawn(process.execPath, [WS_SERVER], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const ready = new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (s) => {
      output += s
      if (output.includes('running at')) resolve()
    })
    child.stderr.setEncoding('utf8').on('data', (s) => (output += s))
    void exited.then((r) => reject(new Error(`the y-websocket server exited with ${r.signal ?? r.code}: ${output.trim().slice(0, 500)}`)))
  })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await withTimeout(exited, 5_000, 'the y-websocket server did not stop').catch(() => child.kill('SIGKILL'))
  }
  try {
    await withTimeout(ready, 15_000, 'the y-websocket server did not start within 15 s')
  } catch (err) {
    await stop()
    throw err
  }
  return { port, pid: child.pid, stop }
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}
