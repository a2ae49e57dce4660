// Bytes to reconcile two replicas that differ by 10 records: (a) today's one document
// (state vectors), (c) the collection split into S shards (a state vector per shard, and a
// digest of them first), (d) a range-based set reconciliation (negentropy-style) over the
// index's (key, stamp) items, simulated. Run: npm run build && node scripts/experiments/storage/reconcile.mjs
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { createHash } from 'node:crypto'
import { RecordCollection } from '../../../dist/core/record-collection.js'

const DIFF = 10
const record = (i, v = 0) => ({ symbol: 'S' + (i % 5000), quantity: (i + v) % 97, note: 'n' + i })
const key = (i) => 'key-' + i.toString(36)
function shardOf(k, shards) {
  let h = 0x811c9dc5
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193) >>> 0
  return h % shards
}
const kb = (b) => (b / 1024).toFixed(2) + ' KB'

// (a) today: one RecordCollection document of 100,000 records, A changes 10, both exchange STEP1/STEP2
{
  const N = 100000
  const a = new Y.Doc()
  const ca = new RecordCollection('positions', a)
  for (let b = 0; b < N; b += 1000)
    a.transact(() => {
      for (let i = b; i < b + 1000; i++) ca.set(key(i), record(i), 'local')
    })
  const b = new Y.Doc()
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a), 'remote')
  new RecordCollection('positions', b)
  for (let i = 0; i < DIFF; i++) ca.set(key(i * 7919), record(i * 7919, 1), 'local')
  const svA = Y.encodeStateVector(a)
  const svB = Y.encodeStateVector(b)
  const toB = Y.encodeStateAsUpdate(a, svB)
  const toA = Y.encodeStateAsUpdate(b, svA)
  const total = svA.length + svB.length + toB.length + toA.length
  console.log(
    `(a) one document, ${N} records, ${DIFF} changed: SVs ${svA.length}+${svB.length} B, updates ${toB.length}+${toA.length} B, total ${kb(total)} (independent of N: one SV entry per Yjs client)`,
  )
  // Every open of a document is a new Yjs client: the state vector grows by one entry per
  // writing session, forever (until an epoch rebuilds the document).
  const sv = new Map()
  for (let c = 0; c < 1000; c++) sv.set((Math.random() * 2 ** 32) >>> 0, 1 + Math.floor(Math.random() * 50000))
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, sv.size)
  for (const [c, k] of sv) {
    encoding.writeVarUint(enc, c)
    encoding.writeVarUint(enc, k)
  }
  console.log(`    a state vector after 1,000 writing sessions: ${kb(encoding.length(enc))} each way`)
}

// (c) shards: N records split by key hash into S YKeyValue documents; A changes 10 records
function buildShards(N, S, clientOf) {
  const docs = Array.from({ length: S }, () => {
    const d = new Y.Doc()
    d.clientID = clientOf
    return d
  })
  const buckets = Array.from({ length: S }, () => [])
  for (let i = 0; i < N; i++) buckets[shardOf(key(i), S)].push({ key: key(i), val: record(i) })
  for (let s = 0; s < S; s++) docs[s].getArray('kv').push(buckets[s])
  return docs
}
for (const S of [256, 4096]) {
  const N = 1000000
  const t0 = Date.now()
  const A = buildShards(N, S, 1111)
  const B = A.map((d) => {
    const b = new Y.Doc()
    b.clientID = 2222
    Y.applyUpdate(b, Y.encodeStateAsUpdate(d))
    return b
  })
  // A changes 10 records: delete the old entry, push the new one (in a new session: client 3333)
  const changed = new Set()
  for (let i = 0; i < DIFF; i++) {
    const k = key(i * 7919)
    const s = shardOf(k, S)
    changed.add(s)
    const d = A[s]
    const arr = d.getArray('kv')
    const idx = arr.toArray().findIndex((e) => e.key === k)
    d.clientID = 3333
    d.transact(() => {
      arr.delete(idx, 1)
      arr.push([{ key: k, val: record(i * 7919, 1) }])
    })
  }
  // plain: each side sends every shard's state vector (shard number + SV)
  let svBytes = 0
  let upd = 0
  for (let s = 0; s < S; s++) {
    for (const [x, y] of [
      [A[s], B[s]],
      [B[s], A[s]],
    ]) {
      const sv = Y.encodeStateVector(y)
      svBytes += 3 + sv.length // varuint shard number (<= 3 B) + length-prefixed SV
      const u = Y.encodeStateAsUpdate(x, sv)
      if (u.length > 2) upd += 3 + u.length // an empty update is not sent
    }
  }
  // digest first: 8 B of SHA-256 over each shard's SV; SVs only where they differ
  const digestBytes = 2 * S * 8
  let svDiff = 0
  for (const s of changed) svDiff += 2 * (3 + Y.encodeStateVector(A[s]).length)
  console.log(`(c) ${S} shards of ~${Math.round(N / S)} records (built in ${Date.now() - t0} ms), ${DIFF} changed in ${changed.size} shards:`)
  console.log(
    `    every shard's SV both ways ${kb(svBytes)} + updates ${kb(upd)} = ${kb(svBytes + upd)}; digest first: ${kb(digestBytes)} + SVs ${kb(svDiff)} + updates ${kb(upd)} = ${kb(digestBytes + svDiff + upd)}`,
  )
}

// (d) range-based reconciliation over the index's items (key, stamp), negentropy-style.
// Wire estimate per range: bound (1 B length + the shortest key prefix that separates it),
// 1 B mode, 16 B fingerprint (negentropy's size); an id list: 1 B mode, count, 16 B per id.
{
  const N = 1000000
  const BRANCH = 16
  const IDLIST = 32 // a range of at most this many items is answered with its ids
  const h32 = (s) => createHash('sha256').update(s).digest().readUInt32LE(0)
  const keys = []
  for (let i = 0; i < N; i++) keys.push(key(i))
  keys.sort()
  const stampA = new Array(N).fill('0mywpiww0.0000.yKSUKPH5')
  const stampB = stampA.slice()
  for (let i = 0; i < DIFF; i++) stampA[(i * 99991) % N] = '0mywpiz7c.0000.Lr2NASuq'
  const t0 = Date.now()
  // the common items' hashes once, then the differing ones
  const base = new Uint32Array(N)
  for (let i = 0; i < N; i++) base[i] = h32(keys[i] + stampB[i])
  const pre = (stamps) => {
    const p = new Uint32Array(N + 1)
    for (let i = 0; i < N; i++) p[i + 1] = (p[i] + (stamps[i] === stampB[i] ? base[i] : h32(keys[i] + stamps[i]))) >>> 0
    return p
  }
  const PA = pre(stampA)
  const PB = pre(stampB)
  const fp = (P, lo, hi) => (P[hi] - P[lo]) >>> 0 // both sides hold the same keys here: ranges are index ranges
  const boundBytes = (i) => {
    if (i === 0 || i === N) return 1
    const a = keys[i - 1]
    const b = keys[i]
    let j = 0
    while (j < a.length && a[j] === b[j]) j++
    return 1 + j + 1
  }
  let bytes = 2 // first message: one range, the whole set
  let rounds = 1
  let ranges = [[0, N]]
  let found = 0
  while (ranges.length > 0) {
    const next = []
    let msg = 0
    for (const [lo, hi] of ranges) {
      if (fp(PA, lo, hi) === fp(PB, lo, hi)) {
        msg += 1
        continue
      } // "skip"
      if (hi - lo <= IDLIST) {
        msg += boundBytes(hi) + 1 + 3 + 16 * (hi - lo)
        for (let i = lo; i < hi; i++) if (stampA[i] !== stampB[i]) found++
        continue
      }
      const step = Math.ceil((hi - lo) / BRANCH)
      for (let x = lo; x < hi; x += step) {
        const y = Math.min(hi, x + step)
        msg += boundBytes(y) + 1 + 16
        next.push([x, y])
      }
    }
    bytes += msg
    ranges = next
    rounds++
  }
  const dataBytes = DIFF * (60 + JSON.stringify(record(1)).length) // the 10 records themselves, key + stamp + value
  console.log(
    `(d) range-based reconciliation of ${N} (key, stamp) items, ${DIFF} differ: ${rounds} messages (${Math.ceil(rounds / 2)} round trips), ${kb(bytes)} of fingerprints and ids, ${found} differences found, + ~${kb(dataBytes)} of records (simulated in ${Date.now() - t0} ms; branch ${BRANCH}, id lists below ${IDLIST + 1} items)`,
  )
}
