// File history costs (docs/design/folders.md 2.7): what keeping a text version adds to a capture
// (the replaced text rebuilt from the capture base + its SHA-256), and `folder history` of a file
// with 100 versions (the default retention) read from a real LevelDB. `npm run build` first.
//   node scripts/experiments/folders/history.mjs
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { captureText, currentBase, newTextFileDoc, textAt } from '../../../dist/core/folder-text-doc.js'
import { fileVersions } from '../../../dist/core/folder-versions.js'
import { LocalWorkspace } from '../../../dist/daemon/local-workspace.js'
import { readRecordHistory } from '../../../dist/store/history-rows.js'

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const side = { device: 'bench', stamp: '0' }

for (const edits of [10, 100, 1000]) {
  const doc = newTextFileDoc()
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${'x'.repeat(40)}`)
  let base
  for (let i = 0; i < edits; i++) {
    lines[i % lines.length] = `line ${i % lines.length} edited ${i} ${'y'.repeat(30)}`
    base = captureText(doc, lines.join('\n') + '\n', side, base === undefined ? {} : { base }).base
  }
  const times = []
  for (let r = 0; r < 50; r++) {
    const t0 = performance.now()
    const text = textAt(doc, base ?? currentBase(doc))
    createHash('sha256').update(text).digest('hex')
    times.push(performance.now() - t0)
  }
  console.log(`keep the replaced text: ${(lines.join('\n').length / 1024).toFixed(1)} KB file after ${edits} captures: median ${median(times).toFixed(3)} ms`)
}

const home = await mkdtemp(join(tmpdir(), 'ks-fhist-bench-'))
try {
  const ws = await LocalWorkspace.open({ home })
  const C = '_folder.bench'
  const KEY = 'fileidaaaaaaaaaaaaaaaa'
  await ws.units.commit(C, [], [{ key: KEY, fields: { path: 'a.yaml', kind: 'text', size: 1, hash: 'h0', x: false } }])
  for (let i = 1; i < 100; i++)
    await ws.units.commit(C, [], [{ key: KEY, fields: { size: 10 + i, hash: createHash('sha256').update(String(i)).digest('hex') } }])
  await ws.flush()
  const times = []
  let n = 0
  let bytes = 0
  for (let r = 0; r < 50; r++) {
    const t0 = performance.now()
    const rows = (await readRecordHistory(ws.store.db, C, KEY)).versions
    n = fileVersions(rows).length
    times.push(performance.now() - t0)
    bytes = rows.reduce((s, row) => s + JSON.stringify(row).length, 0)
  }
  console.log(`folder history of a file with ${n} versions: median ${median(times).toFixed(2)} ms; entries ~${Math.round(bytes / n)} B each as JSON`)
  await ws.close()
} finally {
  await rm(home, { recursive: true, force: true })
}
