// Many small records: build each layout once, then open it cold in a fresh process and read
// one record. Figures: time to open + first get, RSS and heap after it, encoded/stored size.
// (a) today: one RecordCollection document; (b) one YKeyValue document; (c) the collection
// split into S YKeyValue shards by key hash, stored in LevelDB, one loaded on demand;
// (d) a LevelDB index key -> {v, t}, read without any document.
// Run: npm run build && node scripts/experiments/storage/many.mjs [N ...]  (default 1000 100000 1000000)
import * as Y from 'yjs'
import { Level } from 'level'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { newYkv } from './ykv.mjs'

const SHARDS = Number(process.env.SHARDS ?? 256)
const here = new URL(import.meta.url).pathname
const record = (i) => ({ symbol: 'S' + (i % 5000), quantity: i % 97, note: 'n' + i })
const key = (i) => 'key-' + i.toString(36)
export function shardOf(k, shards = SHARDS) {
  let h = 0x811c9dc5
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193) >>> 0
  return h % shards
}
const sorted = (o) => JSON.stringify(Object.fromEntries(Object.entries(o ?? {}).sort()))
const rssMb = () => (process.memoryUsage().rss / 1048576).toFixed(0)
const heapMb = () => (process.memoryUsage().heapUsed / 1048576).toFixed(0)

async function build(dir, n, layouts) {
  const out = {}
  if (layouts.includes('a')) {
    const { RecordCollection } = await import('../../../dist/core/record-collection.js')
    const t0 = performance.now()
    const doc = new Y.Doc()
    const c = new RecordCollection('positions', doc)
    for (let b = 0; b < n; b += 1000)
      doc.transact(() => {
        for (let i = b; i < Math.min(n, b + 1000); i++) c.set(key(i), record(i), 'local')
      })
    const u = Y.encodeStateAsUpdate(doc)
    writeFileSync(join(dir, 'a.update'), u)
    out.a = { bytes: u.length, buildMs: performance.now() - t0 }
  }
  if (layouts.includes('b')) {
    const t0 = performance.now()
    const doc = new Y.Doc()
    const arr = doc.getArray('kv')
    for (let b = 0; b < n; b += 10000) {
      const batch = []
      for (let i = b; i < Math.min(n, b + 10000); i++) batch.push({ key: key(i), val: record(i) })
      arr.push(batch)
    }
    const u = Y.encodeStateAsUpdate(doc)
    writeFileSync(join(dir, 'b.update'), u)
    out.b = { bytes: u.length, buildMs: performance.now() - t0 }
  }
  if (layouts.includes('c') || layouts.includes('d')) {
    const t0 = performance.now()
    const db = new Level(join(dir, 'level'), { keyEncoding: 'utf8', valueEncoding: 'view' })
    await db.open()
    const buckets = Array.from({ length: SHARDS }, () => [])
    for (let i = 0; i < n; i++) buckets[shardOf(key(i))].push(i)
    let shardBytes = 0
    let ops = []
    const enc = new TextEncoder()
    for (let s = 0; s < SHARDS; s++) {
      const doc = new Y.Doc()
      doc.getArray('kv').push(buckets[s].map((i) => ({ key: key(i), val: record(i) })))
      const u = Y.encodeStateAsUpdate(doc)
      shardBytes += u.length
      ops.push({ type: 'put', key: 's!positions!' + String(s).padStart(4, '0'), value: u })
      // (d) the index rows, in the same batch as the shard they index
      for (const i of buckets[s])
        ops.push({ type: 'put', key: 'r!positions!' + key(i), value: enc.encode(JSON.stringify({ v: record(i), t: '0mywpiww0.0000.yKSUKPH5' })) })
      if (ops.length > 20000) {
        await db.batch(ops)
        ops = []
      }
    }
    if (ops.length) await db.batch(ops)
    await db.close()
    out.c = {
      bytes: shardBytes,
      buildMs: performance.now() - t0,
      note: `${SHARDS} shards, ~${Math.round(n / SHARDS)} records each; the same LevelDB holds (d)`,
    }
    out.d = { bytes: null }
  }
  return out
}

async function load(dir, layout) {
  const t0 = performance.now()
  let got
  let openMs
  if (layout === 'a') {
    const { RecordCollection } = await import('../../../dist/core/record-collection.js')
    const t1 = performance.now() // module import not counted
    const doc = new Y.Doc()
    Y.applyUpdate(doc, readFileSync(join(dir, 'a.update')))
    const c = new RecordCollection('positions', doc)
    got = c.get(key(7))
    globalThis.keep = c
    return { ms: performance.now() - t1, got }
  }
  if (layout === 'b') {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, readFileSync(join(dir, 'b.update')))
    globalThis.keep = newYkv(doc)
    got = globalThis.keep.get(key(7))
  }
  if (layout === 'c') {
    const db = new Level(join(dir, 'level'), { keyEncoding: 'utf8', valueEncoding: 'view' })
    await db.open()
    openMs = performance.now() - t0
    const doc = new Y.Doc()
    Y.applyUpdate(doc, await db.get('s!positions!' + String(shardOf(key(7))).padStart(4, '0')))
    globalThis.keep = newYkv(doc)
    got = globalThis.keep.get(key(7))
  }
  if (layout === 'd') {
    const db = new Level(join(dir, 'level'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    await db.open()
    openMs = performance.now() - t0
    got = JSON.parse(await db.get('r!positions!' + key(7))).v
  }
  return { ms: performance.now() - t0, got, openMs }
}

if (process.argv[2] === '--load') {
  const [dir, layout] = process.argv.slice(3)
  const r = await load(dir, layout)
  if (globalThis.gc) globalThis.gc()
  process.stdout.write(JSON.stringify({ ms: r.ms, rss: rssMb(), heap: heapMb(), openMs: r.openMs, ok: sorted(r.got) === sorted(record(7)) }))
} else {
  const sizes = process.argv.slice(2).map(Number)
  for (const n of sizes.length ? sizes : [1000, 100000, 1000000]) {
    const dir = mkdtempSync(join(tmpdir(), 'kitsync-storage-'))
    // today's layout at 1,000,000 needs ~10 s and >1 GB to build; measured up to 300,000
    const layouts = n <= 300000 ? ['a', 'b', 'c', 'd'] : ['b', 'c', 'd']
    const built = await build(dir, n, layouts)
    const baseline = JSON.parse(
      execFileSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify({rss:(process.memoryUsage().rss/1048576).toFixed(0)}))']),
    )
    for (const l of layouts) {
      const runs = []
      for (let i = 0; i < 3; i++)
        runs.push(JSON.parse(execFileSync(process.execPath, ['--expose-gc', here, '--load', dir, l, String(n)], { maxBuffer: 1 << 20 })))
      runs.sort((x, y) => x.ms - y.ms)
      const r = runs[1]
      const b = built[l]
      console.log(
        `n=${String(n).padStart(8)} (${l}) open+get ${r.ms.toFixed(1).padStart(8)} ms${r.openMs ? ` (level open ${r.openMs.toFixed(1)})` : ''}  rss ${String(r.rss).padStart(5)} MB (bare node ${baseline.rss})  heap ${String(r.heap).padStart(4)} MB  ${b.bytes === null ? '' : `state ${(b.bytes / 1048576).toFixed(2)} MB`}  ok=${r.ok}  ${b.note ?? ''}`,
      )
    }
    rmSync(dir, { recursive: true, force: true })
  }
}
