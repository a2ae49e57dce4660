// Benchmark section "workload" (issue 6): a realistic trading workspace.
//
// 1. Catch-up: peer A fills a workspace of 20 watchlists × 500 symbols, 500 alerts, a settings
//    record of 30 fields and a journal of 50,000 entries through the workspace API; a new device
//    B joins with a pairing token. Time until B holds everything, bytes B received, store sizes.
// 2. Alert latency under load: B stays, C joins with a token from A and then connects to B, so
//    A, B and C are all connected. A changes one alert every ~10 ms; C notes when each change is
//    visible. Without and with a 10,000-entry journal import running on A.
//
// Every peer is a mesh-peer.js child (its own process, Peer.start: LevelDB home, TCP+Noise+Yamux
// on 127.0.0.1, no mDNS), driven over IPC; the commands of this section are in workload-peer.js.
// Times are process.hrtime (CLOCK_MONOTONIC, shared by all processes of the machine).
import { join } from 'node:path'
import { BenchNode } from './mesh.js'
import { dirSize, median, percentile, ROOT, round, storeSize as homeStoreSize, sleep } from './lib.js'

export const id = 'workload'
export const title = 'Workload: a trading workspace synced to a new device; alert latency during a journal import'

// BENCH_QUICK=1 divides the journal sizes by 10 (figures then do not compare).
const SCALE = process.env.BENCH_QUICK === '1' ? 0.1 : 1
const n = (count) => Math.max(1, Math.round(count * SCALE))

const TRADING = { watchlists: 20, symbols: 500, alerts: 500, settingsFields: 30, journal: n(50_000), window: 1000 }
const LOAD = { entries: n(10_000), batch: 100, intervalMs: 10, baselineMs: 3_000, rounds: 3, alertKey: 'alert-7' }
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
const EXTENSION = join(ROOT, 'scripts', 'bench', 'workload-peer.js')
const MB = 1024 * 1024
const LONG = { timeoutMs: 600_000 }

export async function run(ctx) {
  const { measure, note, tmp, log } = ctx
  const nodes = new Set()
  const homes = {}
  const kitsyncNode = async (name, { control = false } = {}) => {
    const node = await BenchNode.fork(name, { extension: EXTENSION })
    nodes.add(node)
    homes[name] = await tmp.make(`workload-${name}`)
    node.info = await node.request('kitsync-start', { home: homes[name], listen: LISTEN, bootstrap: [], control })
    return node
  }
  const expect = {
    watchlists: TRADING.watchlists,
    symbols: TRADING.symbols,
    alerts: TRADING.alerts,
    settingsFields: TRADING.settingsFields,
    journal: TRADING.journal,
  }
  const storeSize = async (name) => {
    const { bytes, files } = await homeStoreSize(homes[name])
    let wal = 0
    try {
      wal = (await dirSize(homes[name])).files['store.wal'] ?? 0
    } catch {
      // no write-ahead file
    }
    return { bytes, files: Object.keys(files).length, walBytes: wal }
  }

  try {
    // -------------------------------------------------------------------------------------
    // 1. Catch-up of a trading workspace.
    log(
      `  A fills ${TRADING.watchlists} watchlists × ${TRADING.symbols} symbols, ${TRADING.alerts} alerts, settings, ${TRADING.journal.toLocaleString('en-US')} journal entries; B joins`,
    )
    const a = await kitsyncNode('A', { control: true }) // control socket: the importer of part 2 goes through it
    let fill
    await measure(
      {
        id: 'fill',
        title: `A fills the trading workspace through the API (${TRADING.journal.toLocaleString('en-US')} journal entries)`,
        unit: 'ms',
        method:
          "Peer A (own process). workspace.set('watchlists', 'wl-<i>', { name, symbols: [500 tickers] }) × 20, awaited one by one; " +
          "500 × set('alerts', 'alert-<i>', { symbol, price, active }) issued at once and awaited together; set('settings', 'ui', { 30 fields }); " +
          `${TRADING.journal.toLocaleString('en-US')} × append('journal', { at, symbol, side, qty, price, note }) (keys from the collection's clock), ` +
          `${TRADING.window} issued at a time, each window awaited (durable). Value = the whole fill; details per part and the JSON size of the workspace (export).`,
      },
      async () => {
        fill = await a.request('tradingFill', TRADING, LONG)
        const c = fill.counts
        if (
          c.watchlists !== expect.watchlists ||
          c.symbolsMin !== expect.symbols ||
          c.alerts !== expect.alerts ||
          c.journal !== expect.journal ||
          c.settingsFields !== expect.settingsFields
        ) {
          throw new Error(`A holds ${JSON.stringify(c)} after the fill`)
        }
        return {
          value: round(fill.fillMs, 0),
          details: {
            watchlistsMs: round(fill.watchlistsMs),
            alertsMs: round(fill.alertsMs),
            settingsMs: round(fill.settingsMs),
            journalMs: round(fill.journalMs),
            journalPerSecond: round(TRADING.journal / (fill.journalMs / 1000), 0),
            workspaceJsonBytes: fill.jsonBytes,
            counts: c,
            collections: fill.collections.map((x) => ({ name: x.name, records: x.records, storeBytes: x.bytes })),
          },
        }
      },
    )
    if (fill === undefined) throw new Error('the fill failed: no catch-up')

    const b = await kitsyncNode('B')
    let joined
    await measure(
      {
        id: 'catchUp.ms',
        title: 'New device B joins and holds the whole trading workspace',
        unit: 'ms',
        method:
          'B: a fresh peer (own process, empty home, already started). A.createInvite() gives a token; time = from B calling peer.join(token) (pairing, adoption, sync session, ' +
          "state-vector exchange of every collection) until B's workspace holds everything: 20 watchlists each with 500 symbols, 500 alerts, settings with 30 fields, " +
          `${TRADING.journal.toLocaleString('en-US')} journal entries (getAll of each collection, repeated every 100 ms if join resolved before they are all there). ` +
          'Details: joinMs (join resolved), caughtUp, the counts read.',
      },
      async () => {
        const { token } = await a.request('invite')
        joined = await b.request('joinVerify', { token, name: 'B', expect }, LONG)
        if (!joined.caughtUp) throw new Error('B did not report caught up')
        return {
          value: round(joined.totalMs, 0),
          details: {
            joinMs: round(joined.joinMs),
            firstReadMs: round(joined.firstReadMs),
            caughtUp: joined.caughtUp,
            countPolls: joined.polls,
            counts: joined.counts,
          },
        }
      },
    )
    if (joined === undefined) throw new Error('B did not join: no latency run')
    await measure(
      {
        id: 'catchUp.bytesIn',
        title: 'Bytes B received from A in the catch-up (sync session)',
        unit: 'MiB',
        method:
          "bytesIn of A's entry in B's peer.networkStatus().devices (sync frames received on the session with A) once B holds everything; A's bytesOut to B for comparison " +
          '(read 1 s later on A). Pairing bytes are not included. MiB = 2^20 bytes; details in bytes and against the JSON size of the workspace.',
      },
      async () => {
        await sleep(1000)
        const fromA = await a.request('sessionBytes')
        const toB = fromA.find((d) => d.peerId === b.info.peerId)
        return {
          value: round(joined.bytesIn / MB, 2),
          details: {
            bytesIn: joined.bytesIn,
            bytesOutOfAToB: toB?.bytesOut,
            workspaceJsonBytes: fill.jsonBytes,
            bytesInPerJsonByte: round(joined.bytesIn / fill.jsonBytes, 3),
          },
        }
      },
    )
    await a.request('flush')
    await b.request('flush')
    const stores = { A: await storeSize('A'), B: await storeSize('B') }
    for (const name of ['B', 'A']) {
      await measure(
        {
          id: `store.${name}`,
          title: `${name}'s store on disk after the catch-up${name === 'A' ? ' (the device that filled it)' : ''}`,
          unit: 'MiB',
          method:
            `Sum of the sizes of the files under ${name}'s home store/ (LevelDB: log, tables, manifest) and snapshots/ (snapshots of 1 MiB and more) after workspace.flush(), peers running. ` +
            'Details: the write-ahead file store.wal beside it, and the JSON size of the workspace.',
        },
        async () => ({
          value: round(stores[name].bytes / MB, 2),
          details: { bytes: stores[name].bytes, files: stores[name].files, storeWalBytes: stores[name].walBytes, workspaceJsonBytes: fill.jsonBytes },
        }),
      )
    }

    // -------------------------------------------------------------------------------------
    // 2. Alert latency on a mesh of 3 while a journal import runs on A.
    log(
      `  C joins (A, B, C all connected); A changes ${LOAD.alertKey} every ${LOAD.intervalMs} ms; ${LOAD.rounds} rounds of ${LOAD.baselineMs / 1000} s without load, ` +
        `then during an import of ${LOAD.entries.toLocaleString('en-US')} journal entries into A from another process; then one round with the import in A's process`,
    )
    const c = await kitsyncNode('C')
    const { token } = await a.request('invite')
    const joinedC = await c.request('joinVerify', { token, name: 'C', expect }, LONG)
    // C-B: once B has C in its membership (it comes from A), C dials B and opens a session.
    const connected = await waitForMesh([a, b, c], () => c.request('syncTo', { address: b.info.listen[0], peerId: b.info.peerId }).catch(() => undefined))
    await measure(
      {
        id: 'catchUp.third.ms',
        title: 'Diagnostic: third device C joins and holds the whole workspace (A and B online)',
        unit: 'ms',
        method: 'As catchUp.ms, with a token from A (B online, connected to A). C connects to B after this.',
      },
      async () => ({
        value: round(joinedC.totalMs, 0),
        details: {
          joinMs: round(joinedC.joinMs),
          firstReadMs: round(joinedC.firstReadMs),
          bytesInFromA: joinedC.bytesIn,
          counts: joinedC.counts,
          connectedPerPeer: connected,
        },
      }),
    )

    const mesh = { A: a, B: b, C: c }
    const names = new Map(Object.entries(mesh).map(([name, node]) => [node.info.peerId, name]))
    /** Session bytes of every peer: { A: { B: { in, out }, C: ... }, ... }. */
    const traffic = async () => {
      const out = {}
      for (const [name, node] of Object.entries(mesh)) {
        out[name] = {}
        for (const s of await node.request('sessionBytes')) out[name][names.get(s.peerId) ?? s.peerId] = { in: s.bytesIn, out: s.bytesOut }
      }
      return out
    }
    /** Wait until no sync bytes move for 3 polls in a row (relays and echoes done). */
    const settle = async () => {
      const deadline = performance.now() + 30_000
      let last = ''
      let same = 0
      while (same < 3 && performance.now() < deadline) {
        const now = JSON.stringify(await traffic())
        same = now === last ? same + 1 : 0
        last = now
        await sleep(200)
      }
    }
    const importer = await BenchNode.fork('importer', { extension: EXTENSION })
    nodes.add(importer)

    await c.request('watchAlert', { key: LOAD.alertKey })
    const baseline = []
    const rounds = []
    const modes = [...Array.from({ length: LOAD.rounds }, () => 'socket'), 'in-process']
    for (const [r, mode] of modes.entries()) {
      await settle()
      await a.request('startAlerts', { key: LOAD.alertKey, intervalMs: LOAD.intervalMs })
      await sleep(LOAD.baselineMs)
      const idle = await a.request('stopAlerts')
      baseline.push(alertSamples(idle, await drainSeen(c, idle.sent.length - 1)))
      await settle()
      const before = await traffic()
      const tag = `import${r}`
      await c.request('watchJournal', { tag, count: LOAD.entries })
      const reached = c.nextEvent(
        (e) => e.event === 'journalReached' && e.tag === tag,
        300_000,
        `C did not get the ${LOAD.entries} imported entries of round ${r + 1}`,
      )
      reached.catch(() => undefined)
      await a.request('startAlerts', { key: LOAD.alertKey, intervalMs: LOAD.intervalMs })
      const args = { count: LOAD.entries, batch: LOAD.batch, offset: TRADING.journal + r * LOAD.entries }
      const imp = mode === 'socket' ? await importer.request('importViaSocket', { home: homes.A, ...args }, LONG) : await a.request('importJournal', args, LONG)
      const alerts = await a.request('stopAlerts')
      const seenAll = await reached
      const samples = alertSamples(alerts, await drainSeen(c, alerts.sent.length - 1))
      await settle()
      const after = await traffic()
      const moved = {}
      for (const [name, peers] of Object.entries(after)) {
        moved[name] = {}
        for (const [other, t] of Object.entries(peers)) {
          const was = before[name]?.[other]
          // Counters belong to a session: lower than before means the session was replaced.
          moved[name][other] =
            was === undefined || t.in < was.in || t.out < was.out ? { newSession: true, in: t.in, out: t.out } : { in: t.in - was.in, out: t.out - was.out }
        }
      }
      rounds.push({
        mode,
        samples,
        ms: imp.ms,
        onCMs: seenAll.t - imp.t0,
        firstOnCMs: seenAll.first - imp.t0,
        batchMsMedian: median(imp.batchMs),
        batchMsMax: Math.max(...imp.batchMs),
        bytes: moved,
      })
      log(
        `    round ${r + 1} (${mode}): import ${round(imp.ms, 0)} ms (all on C after ${round(seenAll.t - imp.t0, 0)} ms); alert p99 ${round(percentile(baseline[r].samples, 99), 1)} ms idle, ` +
          `${round(percentile(samples.samples, 99), 1)} ms during the import (${samples.samples.length} changes)`,
      )
    }
    const socketRounds = rounds.filter((x) => x.mode === 'socket')
    const inProcess = rounds.find((x) => x.mode === 'in-process')
    const alertMethod = (phase) =>
      `Mesh A, B, C (each its own process, all three connected). In A's process a timer every ${LOAD.intervalMs} ms (setTimeout chain) notes hrtime t0 and calls ` +
      `workspace.set('alerts', '${LOAD.alertKey}', { symbol, price, active, seq }) without awaiting. C notes hrtime at each remote 'change' event of that alert with its seq. ` +
      'Latency of change seq = first time C showed seq or a later one (a change overtaken inside one merged update counts as visible then) - t0. ' +
      {
        baseline: `Samples: ${modes.length} windows of ${LOAD.baselineMs / 1000} s with no other writes (one before each import round, after all sync traffic settled), pooled. `,
        load:
          `Samples: the changes made while another process (the importer, its own child) imports ${LOAD.entries.toLocaleString('en-US')} journal entries into A through A's control socket ` +
          `(openWorkspace({ home, mode: 'peer' }), workspace.append, batches of ${LOAD.batch} issued at once, each batch awaited), ${socketRounds.length} rounds pooled. `,
        inProcess: `Samples: the changes made while A's own process imports ${LOAD.entries.toLocaleString('en-US')} journal entries (LocalWorkspace.append, batches of ${LOAD.batch} issued at once, each awaited), one round. `,
      }[phase] +
      'Details: n, max, per-round figures, how many changes C saw as their own event, and the write interval A achieved.'
    const phases = [
      ['baseline', 'with no other writes', baseline],
      ['load', `during a ${LOAD.entries.toLocaleString('en-US')}-entry journal import into A from another process`, socketRounds.map((x) => x.samples)],
      [
        'inProcess',
        `diagnostic: during a ${LOAD.entries.toLocaleString('en-US')}-entry journal import in A's own process`,
        inProcess === undefined ? [] : [inProcess.samples],
      ],
    ]
    for (const [phase, what, runs] of phases) {
      const samples = runs.flatMap((x) => x.samples)
      await measure(
        { id: `alert.${phase}.p50`, title: `Alert change on A visible on C, ${what}: median`, unit: 'ms', method: alertMethod(phase) },
        async () => {
          if (samples.length === 0) throw new Error('no samples')
          return {
            value: round(percentile(samples, 50), 2),
            details: {
              n: samples.length,
              p90: round(percentile(samples, 90), 2),
              p99: round(percentile(samples, 99), 2),
              max: round(Math.max(...samples), 2),
              perRound: runs.map((x) => ({
                n: x.samples.length,
                p50: round(percentile(x.samples, 50), 2),
                p99: round(percentile(x.samples, 99), 2),
                max: round(Math.max(...x.samples), 2),
                seenAsOwnEvent: x.direct,
                writeIntervalMedianMs: round(x.intervalMedian, 2),
                writeIntervalMaxMs: round(x.intervalMax, 1),
                writeErrors: x.errors,
              })),
            },
          }
        },
      )
      await measure(
        { id: `alert.${phase}.p99`, title: 'Same, 99th percentile', unit: 'ms', method: `The samples of alert.${phase}.p50, nearest rank` },
        async () => {
          if (samples.length === 0) throw new Error('no samples')
          return { value: round(percentile(samples, 99), 2), details: { n: samples.length, max: round(Math.max(...samples), 2) } }
        },
      )
    }
    const perRound = (x) => ({
      mode: x.mode,
      importMs: round(x.ms, 0),
      entriesPerSecond: round(LOAD.entries / (x.ms / 1000), 0),
      allOnCMs: round(x.onCMs, 0),
      firstOnCMs: round(x.firstOnCMs, 1),
      visibleOnCPerSecond: round(LOAD.entries / (x.onCMs / 1000), 0),
      batchMsMedian: round(x.batchMsMedian, 1),
      batchMsMax: round(x.batchMsMax, 1),
      syncBytesByPeer: x.bytes,
    })
    await measure(
      {
        id: 'import.rate',
        title: `Journal import into A from another process during the alert run (${LOAD.entries.toLocaleString('en-US')} entries)`,
        unit: 'entries/s',
        method:
          `${LOAD.entries.toLocaleString('en-US')} workspace.append('journal', ...) from the importer process through A's control socket, batches of ${LOAD.batch} (each batch issued at once and awaited: ` +
          `acknowledged durable by A), with the alert timer running on A and the journal already holding ${TRADING.journal.toLocaleString('en-US')}+ entries. Value = entries / import time, median of ` +
          `${socketRounds.length} rounds. Details per round (the in-process round too): import ms, ms until C had them all (remote 'change' events counted on C), batch times, and the sync bytes ` +
          'each peer received from / sent to each other peer during the round (from sync-session stats, after traffic settled).',
      },
      async () => {
        const rates = socketRounds.map((x) => LOAD.entries / (x.ms / 1000))
        const syncErrors = {}
        for (const [name, node] of Object.entries(mesh))
          syncErrors[name] = (await node.request('syncErrors')).entries.map((e) => `${e.reason} (peer …${String(e.peer).slice(-6)})`)
        return {
          value: round(median(rates), 0),
          details: { ratesPerSecond: rates.map((x) => round(x, 0)), perRound: rounds.map(perRound), syncErrorsInAuditLog: syncErrors },
        }
      },
    )
  } catch (err) {
    await measure({ id: 'setup', title: 'Set-up of the workload (peers, fill, pairing, mesh)', unit: '' }, () => {
      throw err
    })
  } finally {
    for (const node of [...nodes]) await node.close().catch(() => undefined)
  }

  note(
    'Processes: A, B and C are mesh-peer.js children (own process each; Peer.start with a LevelDB home, libp2p TCP+Noise+Yamux on 127.0.0.1, mDNS off, no control socket) ' +
      "running the commands of scripts/bench/workload-peer.js. The fill, the alert timer and the journal import all run in A's process, through its LocalWorkspace " +
      "(the API an app embedding the peer uses), so the import competes with the alert writes for A's event loop as it would in such an app. The machine has 2 cores.",
  )
  note(`The journal grows during part 2: ${TRADING.journal.toLocaleString('en-US')} entries at the start, +${LOAD.entries.toLocaleString('en-US')} per round.`)
}

/** Latency samples of one phase: `sent` t0 per seq on A, `seen` (seq, t) on C. */
function alertSamples({ sent, errors }, seen) {
  const first = new Map()
  for (const { seq, t } of seen) if (!first.has(seq) || t < first.get(seq)) first.set(seq, t)
  const samples = []
  let visible = Infinity
  for (let s = sent.length - 1; s >= 0; s--) {
    const t = first.get(s)
    if (t !== undefined) visible = Math.min(visible, t)
    if (visible === Infinity) throw new Error(`alert change ${s} of ${sent.length} never became visible on C`)
    samples.push(visible - sent[s])
  }
  const intervals = sent.slice(1).map((t, i) => t - sent[i])
  return { samples, direct: first.size, errors, intervalMedian: median(intervals), intervalMax: Math.max(...intervals) }
}

/** Everything C saw of the alert until it saw the last change A made (`lastSeq`). */
async function drainSeen(c, lastSeq) {
  const seen = []
  const deadline = performance.now() + 30_000
  for (;;) {
    seen.push(...(await c.request('takeAlertSeen')).seen)
    if (seen.some((x) => x.seq === lastSeq)) return seen
    if (performance.now() > deadline) throw new Error(`C did not see alert change ${lastSeq} within 30 s of the last write`)
    await sleep(20)
  }
}

/** Wait until every peer has the others connected; the connected counts. */
async function waitForMesh(peers, retry) {
  const deadline = performance.now() + 30_000
  for (;;) {
    const counts = []
    for (const p of peers) counts.push((await p.request('status')).connected)
    if (counts.every((x) => x === peers.length - 1)) return counts
    if (performance.now() > deadline) throw new Error(`the mesh did not form within 30 s: connected per peer ${JSON.stringify(counts)}`)
    await retry()
    await sleep(250)
  }
}
