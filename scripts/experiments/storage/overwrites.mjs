// 100 keys x 1,000 overwrites: encoded state size and cold load time, per layout.
// (a) today: RecordCollection (dist/) and a plain Y.Map; (b) YKeyValue with 1 and 3
// interleaved writers. Run: npm run build && node scripts/experiments/storage/overwrites.mjs
import * as Y from 'yjs'
import { performance } from 'node:perf_hooks'
import { newYkv } from './ykv.mjs'
import { RecordCollection } from '../../../dist/core/record-collection.js'

const KEYS = 100
const ROUNDS = 1000
const value = (k, r) => ({ x: r, y: k, label: 'position ' + k })

function coldLoad(update, open) {
  // median of 7 loads into a new document
  const times = []
  let got
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now()
    const doc = new Y.Doc()
    Y.applyUpdate(doc, update)
    got = open(doc)
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  return { ms: times[3], got }
}

function report(name, doc, open) {
  const u = Y.encodeStateAsUpdate(doc)
  const { ms, got } = coldLoad(u, open)
  console.log(`${name.padEnd(44)} state ${String(u.length).padStart(9)} B   cold load ${ms.toFixed(2).padStart(7)} ms   get(k7)=${JSON.stringify(got)}`)
  return u.length
}

// (a) RecordCollection, one writer, whole-record writes
{
  const doc = new Y.Doc()
  const c = new RecordCollection('settings', doc)
  for (let r = 0; r < ROUNDS; r++) for (let k = 0; k < KEYS; k++) c.set('k' + k, value(k, r), 'local')
  report('(a) RecordCollection, 1 writer', doc, (d) => new RecordCollection('settings', d).get('k7'))
}
// (a) RecordCollection, one writer, field writes (the positions/settings pattern)
{
  const doc = new Y.Doc()
  const c = new RecordCollection('settings', doc)
  for (let k = 0; k < KEYS; k++) c.set('k' + k, value(k, 0), 'local')
  for (let r = 1; r < ROUNDS; r++) for (let k = 0; k < KEYS; k++) c.set('k' + k, r, 'local', 'x')
  report('(a) RecordCollection, 1 writer, field x', doc, (d) => new RecordCollection('settings', d).get('k7'))
}
// (a) RecordCollection, 3 interleaved writers (sync after each writer's round)
{
  const docs = [new Y.Doc(), new Y.Doc(), new Y.Doc()]
  const cs = docs.map((d) => new RecordCollection('settings', d))
  for (let r = 0; r < ROUNDS; r++) {
    const w = r % 3
    for (let k = 0; k < KEYS; k++) cs[w].set('k' + k, value(k, r), 'local')
    const u = Y.encodeStateAsUpdate(docs[w], Y.encodeStateVector(docs[(w + 1) % 3]))
    Y.applyUpdate(docs[(w + 1) % 3], u, 'remote')
    const u2 = Y.encodeStateAsUpdate(docs[(w + 1) % 3], Y.encodeStateVector(docs[(w + 2) % 3]))
    Y.applyUpdate(docs[(w + 2) % 3], u2, 'remote')
  }
  report('(a) RecordCollection, 3 interleaved writers', docs[2], (d) => new RecordCollection('settings', d).get('k7'))
}
// (a') plain Y.Map
{
  const doc = new Y.Doc()
  const m = doc.getMap('m')
  for (let r = 0; r < ROUNDS; r++) for (let k = 0; k < KEYS; k++) m.set('k' + k, value(k, r))
  report("(a') plain Y.Map, 1 writer", doc, (d) => d.getMap('m').get('k7'))
}
// (b) YKeyValue, 1 writer
{
  const doc = new Y.Doc()
  const kv = newYkv(doc)
  for (let r = 0; r < ROUNDS; r++) for (let k = 0; k < KEYS; k++) kv.set('k' + k, value(k, r))
  report('(b) YKeyValue, 1 writer', doc, (d) => newYkv(d).get('k7'))
}
// (b) YKeyValue, 3 interleaved writers: each round one writer overwrites every key, then syncs
for (const every of [1, 10]) {
  const docs = [new Y.Doc(), new Y.Doc(), new Y.Doc()]
  const kvs = docs.map((d) => newYkv(d))
  const syncAll = () => {
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++)
        if (i !== j) {
          Y.applyUpdate(docs[j], Y.encodeStateAsUpdate(docs[i], Y.encodeStateVector(docs[j])), 'remote')
        }
  }
  for (let r = 0; r < ROUNDS; r++) {
    const w = Math.floor(r / every) % 3
    for (let k = 0; k < KEYS; k++) kvs[w].set('k' + k, value(k, r))
    syncAll()
  }
  report(`(b) YKeyValue, 3 writers, switch every ${every} rnd`, docs[0], (d) => newYkv(d).get('k7'))
}
// (b) YKeyValue, 3 writers writing the same keys concurrently between syncs
{
  const docs = [new Y.Doc(), new Y.Doc(), new Y.Doc()]
  const kvs = docs.map((d) => newYkv(d))
  const syncAll = () => {
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++)
        if (i !== j) {
          Y.applyUpdate(docs[j], Y.encodeStateAsUpdate(docs[i], Y.encodeStateVector(docs[j])), 'remote')
        }
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (let w = 0; w < 3; w++) for (let k = 0; k < KEYS; k += 3) kvs[w].set('k' + ((k + w) % KEYS), value((k + w) % KEYS, r))
    syncAll()
  }
  report('(b) YKeyValue, 3 concurrent writers (1/3 keys each)', docs[0], (d) => newYkv(d).get('k7'))
}
// What a compaction epoch would hold: the live state re-encoded into a new document
{
  const doc = new Y.Doc()
  const kv = newYkv(doc)
  for (let k = 0; k < KEYS; k++) kv.set('k' + k, value(k, ROUNDS - 1))
  report('(epoch) live state only, rebuilt', doc, (d) => newYkv(d).get('k7'))
}
