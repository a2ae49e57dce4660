// How to hash a unit's stored state fast (units catch-up digests): a Y.Doc load + Y.snapshot,
// against the state vector and delete set read from the update itself.
import * as Y from 'yjs'
import { createHash } from 'node:crypto'
const N = 2000
const updates = []
for (let i = 0; i < N; i++) {
  const d = new Y.Doc()
  const t = d.getText('text')
  t.insert(0, `line of file ${i}\n`.repeat(600))
  t.delete(100, 50)
  t.insert(200, 'edit')
  updates.push(Y.encodeStateAsUpdate(d))
}
let t0 = performance.now()
for (const u of updates) {
  const d = new Y.Doc({ gc: false })
  Y.applyUpdate(d, u)
  createHash('sha256')
    .update(Y.encodeSnapshot(Y.snapshot(d)))
    .digest()
}
console.log(`doc load + snapshot: ${((performance.now() - t0) / N).toFixed(3)} ms per unit`)
t0 = performance.now()
for (const u of updates) {
  const sv = Y.encodeStateVectorFromUpdate(u)
  const ds = Y.diffUpdate(u, sv)
  createHash('sha256').update(sv).update(ds).digest()
}
console.log(`sv + diffUpdate: ${((performance.now() - t0) / N).toFixed(3)} ms per unit`)
// Same content, different grouping: equal?
const a = new Y.Doc()
const ta = a.getText('t')
const parts = []
a.on('update', (u) => parts.push(u))
for (let i = 0; i < 20; i++) ta.insert(ta.length, `x${i} `)
ta.delete(3, 10)
ta.delete(0, 2)
const whole = Y.encodeStateAsUpdate(a)
const merged = Y.mergeUpdates(parts)
const key = (u) => {
  const sv = Y.encodeStateVectorFromUpdate(u)
  return Buffer.from(sv).toString('hex') + '|' + Buffer.from(Y.diffUpdate(u, sv)).toString('hex')
}
console.log('same key for whole state and merged parts:', key(whole) === key(merged), key(whole), key(merged))
