// Loading one shard (a YKeyValue document of N records) in a warm process: what a write to a
// shard that is not in memory costs before it can be made. Median of 50 loads per size.
// Run: node scripts/experiments/storage/shard-load.mjs
import * as Y from 'yjs'
import { performance } from 'node:perf_hooks'
import { newYkv } from './ykv.mjs'

const record = (i) => ({ symbol: 'S' + (i % 5000), quantity: i % 97, note: 'n' + i })
const key = (i) => 'key-' + i.toString(36)
for (const size of [244, 1024, 3906]) {
  const doc = new Y.Doc()
  doc.getArray('kv').push(Array.from({ length: size }, (_, i) => ({ key: key(i), val: record(i) })))
  const u = Y.encodeStateAsUpdate(doc)
  const times = []
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now()
    const d = new Y.Doc()
    Y.applyUpdate(d, u)
    const kv = newYkv(d)
    if (kv.get(key(7)) === undefined) throw new Error('missing')
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  console.log(`shard of ${size} records (${(u.length / 1024).toFixed(1)} KB): warm load median ${times[25].toFixed(2)} ms, p90 ${times[45].toFixed(2)} ms`)
}
