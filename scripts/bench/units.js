// Benchmark section "units": the units of a collection (core/unit-types.ts, what folder sync
// keeps each text file in) on two workspaces with real LevelDB, their sync engines joined by an
// in-memory link (no network: the figures are the store's and the protocol's). 10,000 units of
// ~10 KB committed with their manifest records; the catch-up after one unit changed while the
// devices were apart (bytes of unit frames, time until the other side has it); one committed
// edit until the other side's unit:update (p50 over 50).
import { setImmediate } from 'node:timers'
import * as Y from 'yjs'
import { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import { SyncEngine } from '../../dist/sync/sync-engine.js'
import { median, round } from './lib.js'

export const id = 'units'
export const title = 'Units: 10,000 sub-documents, commit, catch-up, live edit'

const QUICK = process.env.BENCH_QUICK === '1'
const N = QUICK ? 1_000 : 10_000
const C = '_folder.bench'
const unitId = (i) => `u${String(i).padStart(21, '0')}`

/** Two engines over an in-memory link; frames counted by their first byte (the frame type). */
function join(hostA, hostB) {
  const engines = [hostA, hostB].map((host) => {
    const engine = new SyncEngine(host, { schedule: (fn) => setImmediate(fn) })
    host.onDocLoaded(({ name, doc }) => engine.track(name, doc))
    return engine
  })
  const traffic = { unitBytes: 0, unitFrames: 0 }
  const sessions = []
  const link = (peerId, deliver) => ({
    peerId,
    bufferedBytes: 0,
    send: (frame) => {
      const bytes = frame instanceof Uint8Array ? frame : Buffer.concat(frame)
      if (bytes[0] >= 5) {
        traffic.unitBytes += bytes.byteLength
        traffic.unitFrames++
      }
      setImmediate(() => deliver()?.receive(bytes))
    },
    close: () => sessions.forEach((s) => s.close()),
  })
  sessions[0] = engines[0].attach(link('b', () => sessions[1]))
  sessions[1] = engines[1].attach(link('a', () => sessions[0]))
  return { engines, sessions, traffic, close: () => sessions.forEach((s) => s.close()) }
}

/** A text edit of a unit, committed (the update of one transaction, with its record). */
async function edit(ws, unit, text, fields) {
  const doc = await ws.units.open(C, unit, () => new Y.Doc())
  let update
  const take = (u) => (update = u)
  doc.on('update', take)
  const t = doc.getText('text')
  doc.transact(() => t.insert(0, text))
  doc.off('update', take)
  ws.units.close(C, unit)
  return { unit, update, record: { key: unit, fields } }
}

export async function run({ measure, tmp, log }) {
  const a = await LocalWorkspace.open({ home: await tmp.make('units-a') })
  const bReal = await LocalWorkspace.open({ home: await tmp.make('units-b') })
  // One workspace: b answers with a's id (the engines check it in the hello).
  const b = Object.create(bReal, { workspaceId: { value: a.workspaceId } })
  log(`  ${N} units of ~10 KB in ${C}, committed 100 at a time with their manifest records; engines joined in memory`)
  try {
    await measure(
      {
        id: 'units-commit',
        title: `commit ${N} units of ~10 KB with their records (100 per commit)`,
        unit: 'ms',
        method: 'units.commit, LevelDB, one batch per commit',
      },
      async () => {
        const started = performance.now()
        for (let i = 0; i < N; i += 100) {
          const edits = []
          for (let j = i; j < i + 100; j++) edits.push(await edit(a, unitId(j), `line ${j} of a small scenario file\n`.repeat(300), { path: `f${j}.json` }))
          await a.units.commit(
            C,
            edits.map((e) => ({ unit: e.unit, update: e.update })),
            edits.map((e) => e.record),
          )
        }
        return round(performance.now() - started, 0)
      },
    )
    // b holds the same units (copied store to store), then a changes one while they are apart.
    for (let i = 0; i < N; i += 100) {
      const updates = []
      for (let j = i; j < i + 100; j++) updates.push({ unit: unitId(j), update: await a.units.diff(C, unitId(j), new Uint8Array([0])) })
      await bReal.units.commit(C, updates)
    }
    await measure(
      {
        id: 'units-digests-cold',
        title: `digests of ${N} stored units, cold (the first catch-up after a start)`,
        unit: 'ms',
        method: 'WorkspaceUnits.digests: each unit merged and loaded once',
      },
      async () => {
        const started = performance.now()
        await bReal.units.digests(C)
        return round(performance.now() - started, 0)
      },
    )
    const changed = await edit(a, unitId(4242), 'changed while apart\n', { path: 'f4242.json', size: 1 })
    await a.units.commit(C, [{ unit: changed.unit, update: changed.update }], [changed.record])
    const net = join(a, b)
    await measure(
      {
        id: 'units-catchup-bytes',
        title: `catch-up of ${N} units with one changed: unit frames, both ways`,
        unit: 'bytes',
        target: { op: '<=', value: 8 * 1024 },
        method: 'UNIT_SUMS, UNIT_LIST of the differing bucket, UNIT_WANT and its answer, counted on the link',
      },
      async () => {
        const started = performance.now()
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('the changed unit did not arrive within 60 s')), 60_000)
          const off = bReal.units.on('unit:update', (e) => {
            if (e.unit !== unitId(4242)) return
            clearTimeout(timer)
            off()
            resolve()
          })
        })
        const ms = performance.now() - started
        // Let the last frames (the other side's answers) land.
        await new Promise((r) => setTimeout(r, 200))
        return { value: net.traffic.unitBytes, details: { frames: net.traffic.unitFrames, msUntilStored: round(ms, 0), fullListBytesEachWay: N * 27 } }
      },
    )
    await measure(
      { id: 'units-live-p50', title: 'one committed edit to the other side unit:update, p50 of 50', unit: 'ms', target: { op: '<=', value: 100 } },
      async () => {
        const times = []
        for (let i = 0; i < 50; i++) {
          const unit = unitId(i)
          const e = await edit(a, unit, `edit ${i}\n`, { size: i })
          const seen = new Promise((resolve) => {
            const off = bReal.units.on('unit:update', (u) => {
              if (u.unit !== unit) return
              off()
              resolve()
            })
          })
          const started = performance.now()
          await a.units.commit(C, [{ unit, update: e.update }], [e.record])
          await seen
          times.push(performance.now() - started)
        }
        return { value: round(median(times), 2), details: { max: round(Math.max(...times), 2) } }
      },
    )
    net.close()
  } finally {
    await a.close()
    await bReal.close()
  }
}
