import * as Y from 'yjs'
import { RecordCollection } from '/work/wt/layout/dist/core/record-collection.js'
import { Hlc } from '/work/wt/layout/dist/core/hlc.js'
for (const layout of [1, 2]) {
  const doc = new Y.Doc()
  const c = new RecordCollection('x', doc, { layout, clock: new Hlc('aaaa') })
  let t = performance.now()
  for (let i = 0; i < 100000; i++) c.set('k' + i, { n: i, s: 'x' }, 'w')
  const create = performance.now() - t
  t = performance.now()
  for (let i = 0; i < 50000; i++) c.set('k' + ((i * 7919) % 100000), { n: -i, s: 'y' }, 'w')
  const over = performance.now() - t
  const state = Y.encodeStateAsUpdate(doc)
  t = performance.now()
  const d2 = new Y.Doc(); const c2 = new RecordCollection('x', d2, {layout})
  Y.applyUpdate(d2, state)
  const remote = performance.now() - t
  t = performance.now()
  const d3 = new Y.Doc(); Y.applyUpdate(d3, state); const c3 = new RecordCollection('x', d3, {layout}); c3.get('k5')
  const load = performance.now() - t
  console.log({ layout, createPerSec: Math.round(100000 / create * 1000), overwritePerSec: Math.round(50000 / over * 1000), state: state.byteLength, remoteApplyMs: Math.round(remote), loadMs: Math.round(load), size: c2.size, size3: c3.size })
}
