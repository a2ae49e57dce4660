// A shared folder through the VPS's blind store, real peers on loopback: A and B trusted, V an
// untrusted member. FILES files of 1-10 KB (the bench's) are written on A into a shared folder.
//   MODE=offline (default): B is stopped; figures: A's time from the writes until the VPS holds
//     everything (uploadMs), the store's entries and bytes, then A stops and B starts reaching
//     only V: time until every file is on B's disk with the right content (catchUpMs).
//   MODE=online: B runs: time until every file is on B (from A directly; the VPS beside them),
//     then until both devices have nothing left for the VPS; the store's entries and bytes
//     (what the two devices uploaded, duplicates included). The same run on a build without
//     folder content in the blind store gives the cost of the uploads on the direct sync.
// RESTART=1 (offline): A restarts once it uploaded all, nothing changed: time until its session is
// live with nothing pending again, and the entries it added (0: the marks held).
// NO_CATCH_UP=1: stop after A's upload (a build without folder content in the store never gets B there).
// Run after `npm run build`:  FILES=1000 MODE=offline node scripts/experiments/folders/vps.mjs
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cli, fileText } from '../../bench/folders.js'
import { BIN, LOOPBACK_PEER_ARGS, startPeer, storeSize } from '../../bench/lib.js'

const FILES = Number(process.env.FILES ?? 1000)
const MODE = process.env.MODE ?? 'offline'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** PROF_DIR: A runs under --cpu-prof and writes its profile there when it stops. */
const PROF_DIR = process.env.PROF_DIR

async function profiled(home, args) {
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

/** [user, system] CPU ms of a process so far (/proc/PID/stat, clock ticks of 10 ms). */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(f[11]) * 10 + Number(f[12]) * 10
}

async function until(what, check, timeoutMs = 600_000) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await sleep(50)
  }
}

const status = async (home) => JSON.parse(await cli(home, ['--json', 'status']))

/** Until the device's session with the VPS is live, has nothing pending and has applied the store's head. */
async function uploaded(home, hv, vId, timeoutMs = 600_000) {
  return until(
    `${home} uploaded`,
    async () => {
      const [mine, store] = [(await status(home)).network?.blindStore, (await status(hv)).network?.blindStore]
      const s = mine?.stores?.find((x) => x.peerId === vId)
      // Without folder content in the store (a build before it), the units never count as pending.
      return s?.live === true && !s.pending && s.cursor === store?.head && store.head > 0 ? store : undefined
    },
    timeoutMs,
  )
}

async function waitForFiles(dir, count) {
  const seen = new Set()
  await until(`${count} files in ${dir}`, async () => {
    for (let g = 0; g < Math.min(20, count); g++) {
      for (const name of await readdir(join(dir, `group${g}`)).catch(() => [])) {
        const m = /^scenario(\d+)\.json$/.exec(name)
        if (m === null || seen.has(name)) continue
        if ((await readFile(join(dir, `group${g}`, name), 'utf8').catch(() => '')) === fileText(Number(m[1]))) seen.add(name)
      }
    }
    return seen.size === count ? true : undefined
  })
}

const tmp = await mkdtemp(join(tmpdir(), 'ks-fold-vps-'))
const peers = new Set()
const start = async (home, args) => {
  const p = await startPeer(home, args)
  peers.add(p)
  return p
}
const stop = async (p) => {
  peers.delete(p)
  await p.stop()
}
try {
  const [ha, hb, hv, fa, fb] = ['ha', 'hb', 'hv', 'fa', 'fb'].map((d) => join(tmp, d))
  for (const d of [ha, hb, hv, fa, fb]) await mkdir(d, { recursive: true, mode: 0o700 })
  const a = PROF_DIR === undefined ? await start(ha, LOOPBACK_PEER_ARGS) : await profiled(ha, LOOPBACK_PEER_ARGS)
  peers.add(a)
  const vToken = JSON.parse(await cli(ha, ['pair', '--untrusted', '--json'])).token
  await cli(hv, ['--json', 'join', vToken, '--name', 'vps', ...LOOPBACK_PEER_ARGS])
  const v = await start(hv, LOOPBACK_PEER_ARGS)
  const vId = v.started.deviceId
  const vAddress = v.started.listen.find((x) => x.startsWith('/ip4/127.0.0.1/'))
  const bToken = JSON.parse(await cli(ha, ['pair', '--json'])).token
  await cli(hb, ['--json', 'join', bToken, '--name', 'B', ...LOOPBACK_PEER_ARGS])
  const bArgs = [...LOOPBACK_PEER_ARGS, '--bootstrap', vAddress]
  let b = await start(hb, [...bArgs, ...a.started.listen.flatMap((x) => ['--bootstrap', x])])
  await cli(ha, ['--json', 'folder', 'add', fa, '--name', 'sim'])
  await until('the folder on B', async () => (JSON.parse(await cli(hb, ['--json', 'folder', 'list'])).some((f) => f.name === 'sim') ? true : undefined))
  await cli(hb, ['--json', 'folder', 'add', fb, '--name', 'sim'])
  await uploaded(ha, hv, vId)
  await uploaded(hb, hv, vId)
  if (MODE === 'offline') {
    await stop(b)
    b = undefined
  }
  const before = (await status(hv)).network.blindStore
  const cpuA = cpuMs(a.pid)
  const t0 = performance.now()
  for (let i = 0; i < FILES; i++) {
    const sub = join(fa, `group${i % 20}`)
    if (i < 20) await mkdir(sub, { recursive: true })
    await writeFile(join(sub, `scenario${i}.json`), fileText(i))
  }
  const out = { files: FILES, mode: MODE }
  if (MODE === 'online') {
    await waitForFiles(fb, FILES)
    out.onBMs = Math.round(performance.now() - t0)
  }
  await until('A scanned', async () =>
    (JSON.parse(await cli(ha, ['--json', 'folder', 'list'])).find((f) => f.name === 'sim')?.files ?? 0) >= FILES ? true : undefined,
  )
  const store = await uploaded(ha, hv, vId)
  out.uploadMs = Math.round(performance.now() - t0)
  if (MODE === 'online') {
    await uploaded(hb, hv, vId)
    out.settledMs = Math.round(performance.now() - t0)
  }
  out.cpuAms = cpuMs(a.pid) - cpuA
  const after = (await status(hv)).network.blindStore
  out.storeEntries = after.head - before.head
  out.storeEntryMB = +((after.sinceBytes - (after.snapshotSeq === before.snapshotSeq ? before.sinceBytes : 0)) / 2 ** 20).toFixed(2)
  out.storeHead = store.head
  if (MODE === 'offline' && process.env.RESTART === '1') {
    await stop(a)
    const head = (await status(hv)).network.blindStore.head
    const t2 = performance.now()
    const a2 = await start(ha, [...LOOPBACK_PEER_ARGS, '--bootstrap', vAddress])
    await uploaded(ha, hv, vId, 120_000).catch(async (err) => {
      console.error(JSON.stringify((await status(ha)).network?.blindStore), JSON.stringify((await status(hv)).network?.blindStore))
      throw err
    })
    out.restartToSettledMs = Math.round(performance.now() - t2)
    out.restartEntries = (await status(hv)).network.blindStore.head - head
    await stop(a2)
  } else if (MODE === 'offline' && process.env.NO_CATCH_UP !== '1') {
    await stop(a)
    const t1 = performance.now()
    b = await start(hb, bArgs)
    await waitForFiles(fb, FILES)
    out.catchUpMs = Math.round(performance.now() - t1)
  }
  for (const p of [...peers]) await stop(p)
  out.vpsStoreMB = +((await storeSize(hv)).bytes / 2 ** 20).toFixed(2)
  out.load = (await readFile('/proc/loadavg', 'utf8')).split(' ')[0]
  console.log(JSON.stringify(out))
} finally {
  for (const p of peers) await p.stop().catch(() => undefined)
  await rm(tmp, { recursive: true, force: true })
}
