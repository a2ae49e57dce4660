// Diagnostics for storage.peerRss (scripts/bench/storage.js): the same two peers (A adopts
// RECORDS records, B joins, 300 changes on A seen on B, B restarts and catches up 10 missed
// changes), then each peer's memory once a second for WATCH_S seconds: whether the document is
// loaded, the idle tracker, V8's heap and resident MB by mapping (memState in storage-peer.js).
// SKIP_CHANGES=1 stops after the join; SNAP=PREFIX writes a heap snapshot of each at the end
// (and of B at SNAP_AT seconds).
//   RECORDS=100000 WATCH_S=12 node scripts/peer-memory-probe.js
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BenchNode } from './bench/mesh.js'
const RECORDS = Number(process.env.RECORDS ?? 100_000)
const EXT = new URL('./bench/storage-peer.js', import.meta.url).pathname
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
const LONG = { timeoutMs: 600_000 }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const dirs = []
const tmp = async (n) => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-memory-' + n + '-'))
  dirs.push(dir)
  return dir
}
const nodes = []
const start = async (name, home, bootstrap = []) => {
  const node = await BenchNode.fork(name, { extension: EXT })
  nodes.push(node)
  node.info = await node.request('kitsync-start', { home, listen: LISTEN, bootstrap })
  return node
}
const state = async (label, ns) => {
  for (const [n, node] of Object.entries(ns)) console.log(label, n, JSON.stringify(await node.request('memState', { collection: 'bench' })))
}
try {
  const a = await start('A', await tmp('A'))
  await a.request('adoptMany', { collection: 'bench', records: RECORDS }, LONG)
  const homeB = await tmp('B')
  let b = await start('B', homeB)
  const { token } = await a.request('invite')
  await b.request('join', { token, name: 'B' }, LONG)
  const last = 'k' + (RECORDS - 1)
  for (;;) {
    const v = await b.request('values', { collection: 'bench', keys: [last] }, LONG)
    if (v[last]?.quantity === RECORDS - 1) break
    await sleep(500)
  }
  await state('joined', { a, b })
  if (process.env.SKIP_CHANGES !== '1') {
    const key = 'k' + (RECORDS >> 1)
    await b.request('watch', { tag: 'chg', key })
    for (let i = 0; i < 300; i++) {
      const seen = b.nextEvent((e) => e.event === 'seen' && e.tag === 'chg', 10_000)
      await a.request('set', { collection: 'bench', key, value: { symbol: 'S', quantity: i, note: 'chg' } })
      await seen
    }
    await b.request('unwatch')
    await state('changed', { a, b })
    await b.close()
    const keys = Array.from({ length: 10 }, (_, j) => 'k' + Math.floor(((j + 0.5) * RECORDS) / 10))
    await a.request('write', { collection: 'bench', values: Object.fromEntries(keys.map((k, j) => [k, { symbol: 'S', quantity: -j, note: 'm' }])) })
    b = await start('B2', homeB, a.info.listen)
    for (;;) {
      const seen = await b.request('values', { collection: 'bench', keys }, LONG)
      if (keys.every((k, j) => seen[k]?.quantity === -j)) break
      await sleep(50)
    }
  }
  for (let s = 0; s < Number(process.env.WATCH_S ?? 12); s++) {
    await sleep(1000)
    await state(`t+${s + 1}s`, { a, b })
    if (process.env.SNAP && Number(process.env.SNAP_AT) === s + 1)
      console.log(await b.request('heapSnapshot', { path: `${process.env.SNAP}-B-t${s + 1}.heapsnapshot` }, LONG))
  }
  if (process.env.SNAP) {
    console.log(await a.request('heapSnapshot', { path: process.env.SNAP + '-A.heapsnapshot' }, LONG))
    console.log(await b.request('heapSnapshot', { path: process.env.SNAP + '-B.heapsnapshot' }, LONG))
  }
} finally {
  for (const n of nodes) await n.close().catch(() => undefined)
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
}
