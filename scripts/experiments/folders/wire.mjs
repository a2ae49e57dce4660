// What a text file's document costs: bytes on the wire for a one-line edit, growth of a
// document that keeps deleted text (gc: false) over many edits, and memory for many files
// loaded at once. Run after `npm run build`:  node scripts/experiments/folders/wire.mjs
import * as Y from 'yjs'
import { captureText, newTextFileDoc, fileText } from '../../../dist/core/folder-text-doc.js'
import { applyTextChange } from '../../../dist/core/folder-text.js'

const stamp = (ms, node) => `${ms.toString(36).padStart(9, '0')}.0000.${node}`
const yamlLike = (lines) => Array.from({ length: lines }, (_, i) => `key_${i}: value number ${i} with some text`).join('\n') + '\n'

function oneLineEdit(size) {
  const lines = Math.round(size / 40)
  const text = yamlLike(lines)
  const doc = newTextFileDoc()
  captureText(doc, text, { device: 'devA', stamp: stamp(1, 'devA') })
  const edited = text.replace(`value number ${lines >> 1} `, `value number ${lines >> 1} (edited) `)
  // The text alone, as a plain Y.Text edit would send it:
  const plain = new Y.Doc()
  plain.getText('text').insert(0, text)
  const psv = Y.encodeStateVector(plain)
  applyTextChange(plain.getText('text'), edited)
  const plainUpdate = Y.encodeStateAsUpdate(plain, psv).byteLength
  let live = 0
  doc.on('update', (u) => (live += u.byteLength))
  captureText(doc, edited, { device: 'devA', stamp: stamp(2, 'devA') }, { record: false })
  const textOnly = live
  captureText(doc, edited.replace('key_1:', 'key_1 :'), { device: 'devA', stamp: stamp(3, 'devA') }, { record: true })
  return {
    file: text.length,
    docState: Y.encodeStateAsUpdate(doc).byteLength,
    plainYText: plainUpdate,
    liveTextOnly: textOnly,
    liveWithCapture: live - textOnly,
  }
}

function manyEdits(size, edits, devices, record) {
  const lines = Math.round(size / 40)
  let text = yamlLike(lines)
  const docs = Array.from({ length: devices }, () => newTextFileDoc())
  const gcDoc = new Y.Doc()
  captureText(docs[0], text, { device: 'dev0', stamp: stamp(1, 'dev0') }, { record })
  for (const d of docs.slice(1)) Y.applyUpdate(d, Y.encodeStateAsUpdate(docs[0]))
  gcDoc.getText('text').insert(0, text)
  let updates = 0
  let live = 0
  docs.forEach((d) =>
    d.on('update', (u, origin) => {
      if (origin !== 'peer') live += u.byteLength
    }),
  )
  for (let i = 0; i < edits; i++) {
    const k = i % devices
    const line = (i * 7919) % lines
    text = text
      .split('\n')
      .map((l, j) => (j === line ? `key_${j}: value ${i} edited by ${k}` : l))
      .join('\n')
    const sv = Y.encodeStateVector(docs[k])
    captureText(docs[k], text, { device: `dev${k}`, stamp: stamp(10 + i, `dev${k}`) }, { record })
    const u = Y.encodeStateAsUpdate(docs[k], sv)
    updates += u.byteLength
    for (let j = 0; j < devices; j++) if (j !== k) Y.applyUpdate(docs[j], u, 'peer')
    applyTextChange(gcDoc.getText('text'), text)
  }
  const snap = docs[0].getMap('captures').get('dev0')?.s.byteLength ?? 0
  return {
    edits,
    devices,
    record,
    keptDeleted: Y.encodeStateAsUpdate(docs[0]).byteLength,
    gcTrue: Y.encodeStateAsUpdate(gcDoc).byteLength,
    live: fileText(docs[0]).length,
    snapshot: snap,
    meanCatchUp: Math.round(updates / edits),
    meanLiveUpdate: Math.round(live / edits),
  }
}

function memory(files, size) {
  globalThis.gc?.()
  const before = process.memoryUsage()
  const text = yamlLike(Math.round(size / 40))
  const docs = []
  const t0 = performance.now()
  for (let i = 0; i < files; i++) {
    const d = newTextFileDoc()
    captureText(d, text.replace('key_0', `file_${i}`), { device: 'devA', stamp: stamp(1, 'devA') })
    docs.push(d)
  }
  const ms = performance.now() - t0
  globalThis.gc?.()
  const after = process.memoryUsage()
  return {
    files,
    size,
    buildMs: Math.round(ms),
    rssMB: Math.round((after.rss - before.rss) / 1e6),
    heapMB: Math.round((after.heapUsed - before.heapUsed) / 1e6),
    keep: docs.length,
  }
}

console.log('one-line edit (bytes):')
for (const size of [1_000, 3_000, 10_000, 100_000, 1_000_000]) console.log(' ', JSON.stringify(oneLineEdit(size)))
console.log('growth over many edits (bytes):')
for (const record of [false, true])
  for (const [edits, devices] of [
    [100, 1],
    [1000, 1],
    [1000, 3],
  ])
    console.log(' ', JSON.stringify(manyEdits(3_000, edits, devices, record)))
console.log('memory of documents held loaded:')
console.log(' ', JSON.stringify(memory(Number(process.env.FILES ?? 2_000), 10_000)))

// Catch-up index: what naming every file's state vector would cost, against the manifest record
// that changes with each capture anyway.
{
  const one = newTextFileDoc()
  captureText(one, yamlLike(75), { device: 'devA', stamp: stamp(1, 'devA') })
  const three = newTextFileDoc()
  Y.applyUpdate(three, Y.encodeStateAsUpdate(one))
  for (const dev of ['devB', 'devC']) {
    const other = newTextFileDoc()
    Y.applyUpdate(other, Y.encodeStateAsUpdate(three))
    captureText(other, fileText(other) + `${dev}\n`, { device: dev, stamp: stamp(2, dev) })
    Y.applyUpdate(three, Y.encodeStateAsUpdate(other))
  }
  const record = JSON.stringify({ path: 'ws1/scenarios/s12/runs/r0042/config.yaml', kind: 'text', size: 3012, hash: 'a'.repeat(64), x: false })
  const sv1 = Y.encodeStateVector(one).byteLength
  const sv3 = Y.encodeStateVector(three).byteLength
  console.log('catch-up index (bytes):')
  console.log(
    ' ',
    JSON.stringify({
      svOneWriter: sv1,
      svThreeWriters: sv3,
      perFileWith16BId: 16 + sv1,
      tenThousandFiles: 10_000 * (16 + sv1),
      manifestRecordJson: record.length,
    }),
  )
}
