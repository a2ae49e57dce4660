// A changed file seen on the other device: two peers in this process on loopback (libp2p over
// TCP, real LevelDB homes, real folders), a folder shared on both, N one-line edits of a 3 KB
// YAML file on A, each timed from the write to B's file holding the new text (B's file polled
// every 2 ms). Also the time of an initial sync of FILES small files to B when it places the
// folder. Run after `npm run build`:
//   node scripts/experiments/folders/latency.mjs            # N=50, FILES=1000
import '../../../dist/polyfill.js'
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPeer } from '../../../dist/index.js'

const N = Number(process.env.N ?? 50)
const FILES = Number(process.env.FILES ?? 1000)
const base = await mkdtemp(join(tmpdir(), 'ks-lat-'))
const listen = ['/ip4/127.0.0.1/tcp/0']
const a = await startPeer({ home: join(base, 'ha'), listen, mdns: false, http: false })
const b = await startPeer({ home: join(base, 'hb'), listen, mdns: false, http: false })
const invite = await a.createInvite()
await b.join(invite.token, 'b')
const da = join(base, 'da')
const db = join(base, 'db')
await mkdir(da)
for (let i = 0; i < FILES; i++) {
  await mkdir(join(da, `d${i % 20}`), { recursive: true })
  await writeFile(join(da, `d${i % 20}`, `f${i}.yaml`), `id: ${i}\n` + 'x: '.padEnd(1000 + ((i * 97) % 9000), 'y') + '\n')
}
const call = (peer, method, params) => peer.control.call({ id: 1, method, params })
await call(a, 'folderAdd', { path: da, name: 'sim' })
const until = async (check, what, ms = 60_000) => {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}
await until(async () => (await call(b, 'folderList', {})).some((f) => f.name === 'sim'), 'definition on B')
const t0 = performance.now()
await call(b, 'folderAdd', { path: db, name: 'sim' })
const count = async () => {
  let n = 0
  for (const d of await readdir(db).catch(() => [])) if (d.startsWith('d')) n += (await readdir(join(db, d)).catch(() => [])).length
  return n
}
await until(async () => (await count()) === FILES, `${FILES} files on B`, 300_000)
const initial = performance.now() - t0

const lines = Array.from({ length: 75 }, (_, i) => `key_${i}: value number ${i} with some text`)
const file = (k) => lines.map((l, i) => (i === 37 ? `key_37: edit ${k}` : l)).join('\n') + '\n'
await writeFile(join(da, 'edit.yaml'), file(0))
await until(async () => (await readFile(join(db, 'edit.yaml'), 'utf8').catch(() => '')) === file(0), 'edit.yaml on B')
const times = []
for (let k = 1; k <= N; k++) {
  const text = file(k)
  const start = performance.now()
  await writeFile(join(da, 'edit.yaml'), text)
  await until(async () => (await readFile(join(db, 'edit.yaml'), 'utf8').catch(() => '')) === text, `edit ${k} on B`)
  times.push(performance.now() - start)
  await new Promise((r) => setTimeout(r, 50))
}
times.sort((x, y) => x - y)
const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(1)
console.log(`initial sync of ${FILES} files (1-10 KB) to a device placing the folder: ${(initial / 1000).toFixed(2)} s`)
console.log(`one changed file on the other device, ${N} edits: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${q(1)} ms`)
console.log(`RSS of this process (both peers): ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`)
await b.stop()
await a.stop()
await rm(base, { recursive: true, force: true })
