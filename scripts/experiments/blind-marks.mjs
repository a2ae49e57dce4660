// What the blind client keeps per store of a folder's units (store/blind-marks.ts): one LevelDB
// row per unit, against one JSON value of every unit rewritten at each acknowledgement (what
// StoreRecord.sv is for collections). UNITS marks of a realistic size (a state vector of one
// client, a digest); figures: an acknowledgement of one unit (the live case: one file saved),
// of 1,000 (a catch-up batch), and loading all marks at a session's start. Medians of RUNS.
// Run: npm run build && UNITS=10000 node scripts/experiments/blind-marks.mjs
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import * as Y from 'yjs'
import { LevelBlindMarks } from '../../dist/store/blind-marks.js'
import { frame, unframe } from '../../dist/store/framing.js'
import { openLevel } from '../../dist/store/level.js'

const UNITS = Number(process.env.UNITS ?? 10_000)
const RUNS = Number(process.env.RUNS ?? 50)
const STORE = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBmWVrSRXpJdnNs'
const C = '_folder.sim'
const unitId = (i) => `file${String(i).padStart(18, '0')}`
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const dir = mkdtempSync(join(tmpdir(), 'ks-marks-'))
const db = await openLevel(join(dir, 'store'))
try {
  const marks = new LevelBlindMarks({ db, batch: (ops) => db.batch(ops) })
  const markOf = (i, clock) => {
    const doc = new Y.Doc()
    doc.clientID = 1000 + (i % 7)
    doc.getText('t').insert(0, 'x'.repeat(clock))
    return { sv: Y.encodeStateVector(doc), digest: (i * 2654435761) >>> 0 }
  }
  const all = Array.from({ length: UNITS }, (_, i) => [unitId(i), markOf(i, 1 + (i % 50))])
  const json = Object.fromEntries(all.map(([u, m]) => [u, { sv: Buffer.from(m.sv).toString('base64'), d: m.digest }]))
  const enc = new TextEncoder()
  const putJson = () => db.put('l!blind-json', frame(enc.encode(JSON.stringify(json))))
  let t = performance.now()
  await marks.save(STORE, C, all)
  const firstRowsMs = performance.now() - t
  const rows1 = []
  const rows1000 = []
  const json1 = []
  const loadRows = []
  const loadJson = []
  for (let r = 0; r < RUNS; r++) {
    const i = (r * 7919) % UNITS
    t = performance.now()
    await marks.save(STORE, C, [[unitId(i), markOf(i, 60 + r)]])
    rows1.push(performance.now() - t)
    t = performance.now()
    await marks.save(STORE, C, all.slice(0, 1000))
    rows1000.push(performance.now() - t)
    t = performance.now()
    json[unitId(i)] = { sv: Buffer.from(markOf(i, 60 + r).sv).toString('base64'), d: r }
    await putJson()
    json1.push(performance.now() - t)
    t = performance.now()
    const loaded = await marks.load(STORE, C)
    loadRows.push(performance.now() - t)
    if (loaded.size !== UNITS) throw new Error(`loaded ${loaded.size}`)
    t = performance.now()
    JSON.parse(new TextDecoder().decode(unframe(await db.get('l!blind-json'))))
    loadJson.push(performance.now() - t)
  }
  const jsonBytes = (await db.get('l!blind-json')).byteLength
  const r2 = (x) => Math.round(x * 100) / 100
  console.log(
    JSON.stringify({
      units: UNITS,
      runs: RUNS,
      firstSaveOfAllRowsMs: r2(firstRowsMs),
      ackOneUnitRowsMs: r2(median(rows1)),
      ackOneUnitJsonMs: r2(median(json1)),
      ack1000UnitsRowsMs: r2(median(rows1000)),
      loadAllRowsMs: r2(median(loadRows)),
      loadAllJsonMs: r2(median(loadJson)),
      jsonValueBytes: jsonBytes,
    }),
  )
} finally {
  await db.close()
  rmSync(dir, { recursive: true, force: true })
}
