// RSS of two real `kitsync peer start` processes sharing a folder of FILES scenario files
// (1-10 KB, the folders bench's files): A idle, A after its first scan, then A and B after an
// initial sync to B (B adds the folder empty). RUNS runs; medians. With SNAPSHOT=1 each peer
// writes a heap snapshot on SIGUSR2 (node --heapsnapshot-signal) into its home at the end.
// With LATER=S, the RSS of both again S seconds later.
// Run after `npm run build`:  FILES=10000 RUNS=3 node scripts/experiments/folders/memory.mjs
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cli, fileText } from '../../bench/folders.js'
import { LOOPBACK_PEER_ARGS, median, processMemory, startPeer } from '../../bench/lib.js'

const FILES = Number(process.env.FILES ?? 10_000)
const RUNS = Number(process.env.RUNS ?? 3)
const SNAPSHOT = process.env.SNAPSHOT === '1'
const MB = 1024 * 1024
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function folderFiles(home) {
  const list = JSON.parse(await cli(home, ['--json', 'folder', 'list']))
  const f = (Array.isArray(list) ? list : list.folders).find((x) => x.name === 'sim')
  return f?.files ?? 0
}

async function countOnDisk(dir) {
  const all = await readdir(dir, { recursive: true })
  return all.filter((f) => /scenario\d+\.json$/.test(f)).length
}

async function until(what, check, timeoutMs = 900_000) {
  const t = performance.now()
  while (!(await check())) {
    if (performance.now() - t > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s`)
    await sleep(200)
  }
  return performance.now() - t
}

const rssMB = async (pid) => Math.round(((await processMemory(pid)).rss / MB) * 10) / 10
/** RssAnon and RssFile of /proc/PID/status (MB): memory the process allocated, and file pages mapped (LevelDB's tables). */
async function rssParts(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (f) => Math.round(Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 102.4) / 10
  return { anon: kb('RssAnon'), file: kb('RssFile') }
}

async function once(root) {
  const homeA = join(root, 'a')
  const homeB = join(root, 'b')
  const dirA = join(root, 'fa')
  const dirB = join(root, 'fb')
  for (const d of [homeA, homeB, dirA, dirB]) await mkdir(d, { recursive: true })
  for (let i = 0; i < FILES; i++) {
    const sub = join(dirA, `group${i % 20}`)
    if (i < 20) await mkdir(sub, { recursive: true })
    await writeFile(join(sub, `scenario${i}.json`), fileText(i))
  }
  if (SNAPSHOT) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --heapsnapshot-signal=SIGUSR2`
  const probe = async (name, pid) => {
    if (process.env.PROBE === undefined) return
    process.kill(pid, 'SIGWINCH')
    await sleep(3000)
    console.log(name, (await import('node:fs')).readFileSync(`/tmp/fmem-probe-${pid}.json`, 'utf8').replace(/\s+/g, ' '))
  }
  const a = await startPeer(homeA)
  const out = {}
  let b
  try {
    const { token } = JSON.parse(await cli(homeA, ['pair', '--json']))
    await cli(homeB, ['--json', 'join', token, '--name', 'B', ...LOOPBACK_PEER_ARGS])
    b = await startPeer(homeB, [...LOOPBACK_PEER_ARGS, ...a.started.listen.flatMap((x) => ['--bootstrap', x])])
    await sleep(2000)
    out.idleA = await rssMB(a.pid)
    await cli(homeA, ['--json', 'folder', 'add', dirA, '--name', 'sim'])
    out.scanMs = Math.round(await until('scan', async () => (await folderFiles(homeA)) >= FILES))
    await sleep(3000)
    out.scannedA = await rssMB(a.pid)
    out.scannedAParts = await rssParts(a.pid)
    await probe('scannedA', a.pid)
    await cli(homeB, ['--json', 'folder', 'add', dirB, '--name', 'sim'])
    out.syncMs = Math.round(await until('initial sync', async () => (await countOnDisk(dirB)) >= FILES))
    await until('B scanned', async () => (await folderFiles(homeB)) >= FILES)
    await sleep(3000)
    out.syncedA = await rssMB(a.pid)
    out.syncedB = await rssMB(b.pid)
    out.syncedAParts = await rssParts(a.pid)
    out.syncedBParts = await rssParts(b.pid)
    if (process.env.LATER !== undefined) {
      // The same once V8's memory reducer had its time (it runs 8-20 s after activity ends).
      await sleep(Number(process.env.LATER) * 1000)
      out.laterA = await rssMB(a.pid)
      out.laterB = await rssMB(b.pid)
    }
    await probe('syncedA', a.pid)
    await probe('syncedB', b.pid)
    if (SNAPSHOT) {
      for (const p of [a, b]) process.kill(p.pid, 'SIGUSR2')
      await sleep(20_000)
    }
  } finally {
    await b?.stop().catch(() => undefined)
    await a.stop().catch(() => undefined)
  }
  return out
}

const results = []
for (let r = 0; r < RUNS; r++) {
  const root = await mkdtemp(join(tmpdir(), 'ks-fmem-'))
  try {
    const res = await once(root)
    console.log(JSON.stringify(res))
    results.push(res)
  } finally {
    if (!SNAPSHOT) await rm(root, { recursive: true, force: true })
    else console.log(`snapshots under ${root}`)
  }
}
const med = {}
for (const k of Object.keys(results[0] ?? {})) if (typeof results[0][k] === 'number') med[k] = median(results.map((x) => x[k]))
console.log(`files ${FILES}, runs ${RUNS}; medians (MB, ms):`, JSON.stringify(med))
