// The kitsync half of the bench's folder figures, alone and quicker to repeat: two real peers on
// loopback, FILES files of 1-10 KB (the bench's) written on A, `folder add` on A (first scan:
// until `folder list` counts them all), then `folder add` on B (initial sync: until every file is
// on B's disk with the right content). Run after `npm run build`:
//   FILES=1000 node scripts/experiments/folders/initial.mjs
// Profile the two peers: PROF_DIR=/tmp/prof (each writes a .cpuprofile there when it stops).
// Also prints each peer's CPU time (user, system; ms from /proc) over the initial sync: on a
// shared machine the wall time moves with the load, the user CPU much less. SETTLE=MS waits that
// long between A's scan and B's add (B then holds every unit first; 0, the default, is the bench).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cli, fileText } from '../../bench/folders.js'
import { BIN, LOOPBACK_PEER_ARGS, processMemory, startPeer } from '../../bench/lib.js'

const FILES = Number(process.env.FILES ?? 1000)
const PROF_DIR = process.env.PROF_DIR
const SETTLE = Number(process.env.SETTLE ?? 0)

/** [user, system] CPU ms of a process so far (/proc/PID/stat, clock ticks of 10 ms). */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return [Number(f[11]) * 10, Number(f[12]) * 10]
}

/** startPeer, with the peer under --cpu-prof when PROF_DIR is set. */
async function peer(home, args) {
  if (PROF_DIR === undefined) return startPeer(home, args)
  const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', PROF_DIR, BIN, '--home', home, '--json', 'peer', 'start', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise((resolve) => child.on('close', resolve))
  let out = ''
  const started = await new Promise((resolve) =>
    child.stdout.setEncoding('utf8').on('data', (s) => {
      out += s
      for (const line of out.split('\n')) if (line.includes('"started"')) resolve(JSON.parse(line))
    }),
  )
  return { pid: child.pid, started, stop: () => (child.kill('SIGTERM'), exited) }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function waitScanned(home, files) {
  const started = performance.now()
  for (;;) {
    const list = JSON.parse(await cli(home, ['--json', 'folder', 'list']))
    const f = (Array.isArray(list) ? list : list.folders).find((x) => x.name === 'sim')
    if (f !== undefined && f.files >= files) return performance.now() - started
    if (performance.now() - started > 600_000) throw new Error(`not scanned: ${JSON.stringify(f)}`)
    await sleep(50)
  }
}

async function waitForFiles(dir, count) {
  const started = performance.now()
  const seen = new Set()
  for (;;) {
    for (let g = 0; g < Math.min(20, count); g++) {
      const names = await readdir(join(dir, `group${g}`)).catch(() => [])
      for (const name of names) {
        const m = /^scenario(\d+)\.json$/.exec(name)
        if (m === null || seen.has(name)) continue
        if ((await readFile(join(dir, `group${g}`, name), 'utf8').catch(() => '')) === fileText(Number(m[1]))) seen.add(name)
      }
    }
    if (seen.size === count) return performance.now() - started
    if (performance.now() - started > 600_000) throw new Error(`${seen.size} of ${count} files arrived`)
    await sleep(10)
  }
}

const tmp = await mkdtemp(join(tmpdir(), 'ks-fold-initial-'))
const peers = []
try {
  const [homeA, homeB, dirA, dirB] = ['ha', 'hb', 'fa', 'fb'].map((d) => join(tmp, d))
  for (const d of [homeA, homeB, dirA, dirB]) await mkdir(d, { recursive: true, mode: 0o700 })
  for (let i = 0; i < FILES; i++) {
    const sub = join(dirA, `group${i % 20}`)
    if (i < 20) await mkdir(sub, { recursive: true })
    await writeFile(join(sub, `scenario${i}.json`), fileText(i))
  }
  const a = await peer(homeA, LOOPBACK_PEER_ARGS)
  peers.push(a)
  const { token } = JSON.parse(await cli(homeA, ['pair', '--json']))
  await cli(homeB, ['--json', 'join', token, '--name', 'B', ...LOOPBACK_PEER_ARGS])
  const b = await peer(homeB, [...LOOPBACK_PEER_ARGS, ...a.started.listen.flatMap((x) => ['--bootstrap', x])])
  peers.push(b)
  while (!JSON.parse(await cli(homeB, ['--json', 'peers'])).some((d) => d.state === 'connected')) await sleep(50)
  let t = performance.now()
  await cli(homeA, ['--json', 'folder', 'add', dirA, '--name', 'sim'])
  await waitScanned(homeA, FILES)
  const firstScanMs = performance.now() - t
  if (SETTLE > 0) await sleep(SETTLE)
  const cpu0 = [cpuMs(a.pid), cpuMs(b.pid)]
  t = performance.now()
  await cli(homeB, ['--json', 'folder', 'add', dirB, '--name', 'sim'])
  await waitForFiles(dirB, FILES)
  const initialMs = performance.now() - t
  const cpu1 = [cpuMs(a.pid), cpuMs(b.pid)]
  const cpu = (i) => cpu1[i].map((v, k) => v - cpu0[i][k])
  const rss = [await processMemory(a.pid), await processMemory(b.pid)].map((m) => Math.round(m.rss / 2 ** 20))
  console.log(
    JSON.stringify({
      files: FILES,
      firstScanMs: Math.round(firstScanMs),
      initialMs: Math.round(initialMs),
      rssMB: rss,
      cpuUserSysMsA: cpu(0),
      cpuUserSysMsB: cpu(1),
      load: (await readFile('/proc/loadavg', 'utf8')).split(' ')[0],
    }),
  )
} finally {
  for (const p of peers) await p.stop().catch(() => undefined)
  await rm(tmp, { recursive: true, force: true })
}
