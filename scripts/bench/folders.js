// Benchmark section "folders" (issue 22): a folder of small files kept in sync between two
// devices on loopback, kitsync against Syncthing (Debian's package, installed here when
// missing; the Syncthing figures are skipped with the reason when it cannot be).
//
// Both tools get the same files and the same measurements, all taken on disk: the time until
// the other device's folder holds the files, read back and compared. kitsync: two real
// `kitsync peer start` processes paired with the CLI, `kitsync folder add` on each. Syncthing:
// two `syncthing serve` instances configured through their REST API (scripts/bench/syncthing.js),
// its watcher delay at 1 s for the latency figure (its default of 10 s is reported too).
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cli, LOOPBACK_PEER_ARGS, median, processMemory, round, sleep, startPeer, summary } from './lib.js'
import { findSyncthing, SyncthingNode } from './syncthing.js'

export const id = 'folders'
export const title = 'Folder sync: kitsync against Syncthing on loopback'

const QUICK = process.env.BENCH_QUICK === '1'
const SMALL = QUICK ? 200 : 1000
const LARGE = QUICK ? 1000 : 10_000
const CHANGES = QUICK ? 10 : 50
const FOLDER = 'sim'
const MB = 1024 * 1024

/** Kept for the folder experiment scripts, which import it from here. */
export { cli }

/** Scenario-like files of 1-10 KB: JSON documents with a few hundred short lines. */
export function fileText(i, variant = 0) {
  const lines = ['{', `  "scenario": ${i},`, `  "variant": ${variant},`]
  const target = 1024 + ((i * 7919) % 9) * 1024
  let n = 0
  while (lines.join('\n').length < target) lines.push(`  "param${n++}": "value ${i}.${n} of the scenario",`)
  lines.push(`  "end": true`, '}')
  return lines.join('\n') + '\n'
}

async function writeFiles(dir, count) {
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `group${i % 20}`)
    if (i < 20) await mkdir(sub, { recursive: true })
    await writeFile(join(sub, `scenario${i}.json`), fileText(i))
  }
}

/** Wait until `dir` holds `count` files named scenario*.json, each read back equal to what was written. */
async function waitForFiles(dir, count, timeoutMs) {
  const started = performance.now()
  const seen = new Set()
  for (;;) {
    for (let g = 0; g < Math.min(20, count); g++) {
      let names = []
      try {
        names = await readdir(join(dir, `group${g}`))
      } catch {
        continue
      }
      for (const name of names) {
        const m = /^scenario(\d+)\.json$/.exec(name)
        if (m === null || seen.has(name)) continue
        try {
          if ((await readFile(join(dir, `group${g}`, name), 'utf8')) === fileText(Number(m[1]))) seen.add(name)
        } catch {
          // being written
        }
      }
    }
    if (seen.size === count) return performance.now() - started
    if (performance.now() - started > timeoutMs) throw new Error(`${seen.size} of ${count} files arrived within ${timeoutMs / 1000} s`)
    await sleep(10)
  }
}

/** Poll a file until it holds `want`; ms from `since`. */
async function waitForContent(file, want, since, timeoutMs = 30_000) {
  for (;;) {
    try {
      if ((await readFile(file, 'utf8')) === want) return performance.now() - since
    } catch {
      // not there yet
    }
    if (performance.now() - since > timeoutMs) throw new Error(`${file} did not get the change within ${timeoutMs / 1000} s`)
    await sleep(2)
  }
}

/** One change at a time on A, each waited for on B; the p50 and the rest. */
async function changeLatency(dirA, dirB, changes) {
  const times = []
  for (let k = 0; k < changes; k++) {
    const i = k % 20
    const rel = join(`group${i % 20}`, `scenario${i}.json`)
    const want = fileText(i, k + 1)
    const since = performance.now()
    await writeFile(join(dirA, rel), want)
    times.push(await waitForContent(join(dirB, rel), want, since))
  }
  return times
}

/** Files under dir whose name marks a conflict copy (kitsync: .conflict-, Syncthing: .sync-conflict-). */
async function conflictCopies(dir) {
  const all = await readdir(dir, { recursive: true })
  return all.filter((f) => /\.(sync-)?conflict-/.test(f))
}

const OFFLINE_FILE = 'scenario-offline.json'
const offlineBase = () => Array.from({ length: 40 }, (_, i) => `line ${i}`).join('\n') + '\n'
const offlineEdit = (text, line, who) => text.replace(`line ${line}\n`, `line ${line} edited on ${who}\n`)

// ---- kitsync ----

class KitsyncPair {
  static async start(tmp, name) {
    const homeA = await tmp.make(`${name}-a`)
    const homeB = await tmp.make(`${name}-b`)
    const a = await startPeer(homeA)
    const { token } = JSON.parse(await cli(homeA, ['pair', '--json']))
    await cli(homeB, ['--json', 'join', token, '--name', 'B', ...LOOPBACK_PEER_ARGS])
    const b = await startPeer(homeB, [...LOOPBACK_PEER_ARGS, ...a.started.listen.flatMap((x) => ['--bootstrap', x])])
    const pair = new KitsyncPair(homeA, homeB, a, b)
    await pair.waitConnected()
    return pair
  }

  constructor(homeA, homeB, a, b) {
    Object.assign(this, { homeA, homeB, a, b })
  }

  async waitConnected() {
    const deadline = performance.now() + 30_000
    for (;;) {
      const peers = JSON.parse(await cli(this.homeB, ['--json', 'peers']))
      if (peers.some((d) => d.state === 'connected')) return
      if (performance.now() > deadline) throw new Error('the kitsync peers did not connect within 30 s')
      await sleep(50)
    }
  }

  async add(home, dir) {
    await cli(home, ['--json', 'folder', 'add', dir, '--name', FOLDER])
  }

  /** Wait until the folder on that device lists `files` files (scanned and stored). */
  async waitScanned(home, files, timeoutMs = 300_000) {
    const started = performance.now()
    for (;;) {
      const list = JSON.parse(await cli(home, ['--json', 'folder', 'list']))
      const f = (Array.isArray(list) ? list : list.folders).find((x) => x.name === FOLDER)
      if (f !== undefined && f.files >= files) return performance.now() - started
      if (performance.now() - started > timeoutMs) throw new Error(`kitsync: folder not scanned within ${timeoutMs / 1000} s: ${JSON.stringify(f)}`)
      await sleep(50)
    }
  }

  async pause() {
    await cli(this.homeA, ['--json', 'sync', 'pause'])
    await cli(this.homeB, ['--json', 'sync', 'pause'])
  }

  async resume() {
    await cli(this.homeA, ['--json', 'sync', 'resume'])
    await cli(this.homeB, ['--json', 'sync', 'resume'])
  }

  async memory() {
    return [await processMemory(this.a.pid), await processMemory(this.b.pid)]
  }

  async stop() {
    await this.a.stop().catch(() => undefined)
    await this.b.stop().catch(() => undefined)
  }
}

// ---- Syncthing ----

class SyncthingPair {
  static async start(tmp, bin, name, watcherDelayS) {
    const a = await SyncthingNode.create(bin, await tmp.make(`${name}-sta`), 'A')
    const b = await SyncthingNode.create(bin, await tmp.make(`${name}-stb`), 'B')
    await a.addDevice(b)
    await b.addDevice(a)
    const pair = new SyncthingPair(a, b, watcherDelayS)
    const deadline = performance.now() + 30_000
    while (!(await a.connected(b))) {
      if (performance.now() > deadline) throw new Error('the syncthing instances did not connect within 30 s')
      await sleep(50)
    }
    return pair
  }

  constructor(a, b, watcherDelayS) {
    Object.assign(this, { a, b, watcherDelayS })
  }

  async add(node, dir) {
    await node.addFolder(FOLDER, dir, [node === this.a ? this.b : this.a], { watcherDelayS: this.watcherDelayS })
  }

  async pause() {
    await this.a.pauseDevice(this.b)
    await this.b.pauseDevice(this.a)
  }

  async resume() {
    await this.a.resumeDevice(this.b)
    await this.b.resumeDevice(this.a)
  }

  async memory() {
    return [await this.a.memory(), await this.b.memory()]
  }

  async stop() {
    await this.a.stop()
    await this.b.stop()
  }
}

// ---- the runs, the same for both ----

/** Initial sync of `count` files from A to a device that adds the folder empty; then the latency of one change. */
async function initialAndLatency(tool, pair, tmp, count) {
  const dirA = await tmp.make(`${tool}-${count}-fa`)
  const dirB = await tmp.make(`${tool}-${count}-fb`)
  await writeFiles(dirA, count)
  const scanStarted = performance.now()
  if (tool === 'kitsync') {
    await pair.add(pair.homeA, dirA)
    await pair.waitScanned(pair.homeA, count)
  } else {
    await pair.add(pair.a, dirA)
    await pair.a.waitIdle(FOLDER, { files: count, timeoutMs: 300_000 })
  }
  const scanMs = performance.now() - scanStarted
  const since = performance.now()
  if (tool === 'kitsync') await pair.add(pair.homeB, dirB)
  else await pair.add(pair.b, dirB)
  await waitForFiles(dirB, count, 600_000)
  const initialMs = performance.now() - since
  return { dirA, dirB, scanMs, initialMs }
}

async function offlineEdits(tool, pair, dirA, dirB) {
  const base = offlineBase()
  await writeFile(join(dirA, OFFLINE_FILE), base)
  await waitForContent(join(dirB, OFFLINE_FILE), base, performance.now(), 30_000)
  await pair.pause()
  // Both devices see their own save while apart (the watchers pick it up), then meet again.
  await writeFile(join(dirA, OFFLINE_FILE), offlineEdit(base, 5, 'A'))
  await writeFile(join(dirB, OFFLINE_FILE), offlineEdit(base, 30, 'B'))
  await sleep(tool === 'syncthing' ? pair.watcherDelayS * 1000 + 1500 : 1500)
  await pair.resume()
  const merged = offlineEdit(offlineEdit(base, 5, 'A'), 30, 'B')
  const deadline = performance.now() + 60_000
  let a
  let b
  for (;;) {
    a = await readFile(join(dirA, OFFLINE_FILE), 'utf8')
    b = await readFile(join(dirB, OFFLINE_FILE), 'utf8')
    if ((a === b && (await conflictCopies(dirA)).length + (await conflictCopies(dirB)).length > 0) || (a === merged && b === merged)) break
    if (performance.now() > deadline) break
    await sleep(50)
  }
  const copies = [...(await conflictCopies(dirA)), ...(await conflictCopies(dirB))]
  return {
    merged: a === merged && b === merged,
    same: a === b,
    keptA: a.includes('edited on A') && b.includes('edited on A'),
    keptB: a.includes('edited on B') && b.includes('edited on B'),
    conflictCopies: copies.length,
    conflictFiles: copies.slice(0, 4),
  }
}

export async function run(ctx) {
  const { measure, note, tmp, log } = ctx
  const st = findSyncthing()
  if (st.reason !== undefined) note(`Syncthing figures skipped: ${st.reason}`)
  else note(`Anchor: ${st.version}, two instances on 127.0.0.1 (no discovery, relays, NAT or reports).`)

  const runs = {}
  const runTool = async (tool, count, delay) => {
    const key = `${tool}.${count}.${delay ?? ''}`
    if (runs[key] !== undefined) return runs[key]
    const pair = tool === 'kitsync' ? await KitsyncPair.start(tmp, `k${count}`) : await SyncthingPair.start(tmp, st.bin, `s${count}`, delay)
    try {
      log(`  ${tool}: ${count} files`)
      const r = await initialAndLatency(tool, pair, tmp, count)
      const memory = await pair.memory()
      r.rssMB = memory.map((m) => round(m.rss / MB))
      if (count === SMALL) {
        r.latency = await changeLatency(r.dirA, r.dirB, tool === 'syncthing' && delay === 10 ? 3 : CHANGES)
        r.offline = await offlineEdits(tool, pair, r.dirA, r.dirB)
      }
      runs[key] = r
      return r
    } finally {
      await pair.stop()
    }
  }

  const both = async (count, delay = 1) => {
    const k = await runTool('kitsync', count)
    const s = st.reason === undefined ? await runTool('syncthing', count, delay) : undefined
    return { k, s }
  }

  await measure(
    {
      id: 'folders.initial.1000',
      title: `Initial sync of ${SMALL.toLocaleString('en-US')} small files (1-10 KB) to a device that adds the folder`,
      unit: 'ms',
      target: { op: '<=', value: 1000 },
      method: 'From `folder add` on the second device (both connected, the first has scanned) until every file is on its disk with the right content.',
    },
    async () => {
      const { k, s } = await both(SMALL)
      return { value: round(k.initialMs), details: { syncthingMs: s === undefined ? null : round(s.initialMs), firstScanMs: round(k.scanMs), rssMB: k.rssMB } }
    },
  )
  await measure(
    { id: 'folders.initial.ratio', title: 'kitsync / Syncthing: initial sync of the small folder', unit: '×', target: { op: '<=', value: 0.5 } },
    async () => {
      const { k, s } = await both(SMALL)
      if (s === undefined) throw new Error('no Syncthing here')
      return { value: round(k.initialMs / s.initialMs, 2), details: { kitsyncMs: round(k.initialMs), syncthingMs: round(s.initialMs) } }
    },
  )
  await measure(
    {
      id: 'folders.change.p50',
      title: `One changed file visible on the other device, p50 over ${CHANGES} changes`,
      unit: 'ms',
      target: { op: '<=', value: 100 },
      method: 'A file rewritten on A (writeFile: truncate and write), then B read until it holds the new content; one change at a time.',
    },
    async () => {
      const { k } = await both(SMALL)
      return { value: round(median(k.latency)), details: summary(k.latency) }
    },
  )
  await measure(
    { id: 'folders.change.ratio', title: 'kitsync / Syncthing (watcher delay 1 s): one changed file, p50', unit: '×', target: { op: '<=', value: 0.1 } },
    async () => {
      const { k, s } = await both(SMALL)
      if (s === undefined) throw new Error('no Syncthing here')
      const d10 = await runTool('syncthing', SMALL, 10)
      return {
        value: round(median(k.latency) / median(s.latency), 3),
        details: { kitsync: summary(k.latency), syncthingDelay1s: summary(s.latency), syncthingDefaultDelay10s: summary(d10.latency) },
      }
    },
  )
  await measure(
    {
      id: 'folders.offline.conflictCopies',
      title: 'Edits of different lines of one file on two devices apart, then together: conflict copies left',
      unit: 'files',
      target: { op: '<=', value: 0 },
      method: 'Both devices paused (kitsync: sync pause; Syncthing: each pauses the other device), line 5 edited on A and line 30 on B, resumed.',
    },
    async () => {
      const { k, s } = await both(SMALL)
      if (!k.offline.merged) throw new Error(`kitsync did not merge: ${JSON.stringify(k.offline)}`)
      return { value: k.offline.conflictCopies, details: { kitsync: k.offline, syncthing: s?.offline ?? null } }
    },
  )
  await measure(
    {
      id: 'folders.initial.10000',
      title: `${LARGE.toLocaleString('en-US')} files: initial sync to a device that adds the folder`,
      unit: 'ms',
      method: 'As the small folder; the RSS of each device once the files are there.',
    },
    async () => {
      const { k, s } = await both(LARGE)
      return {
        value: round(k.initialMs),
        details: {
          firstScanMs: round(k.scanMs),
          rssMB: k.rssMB,
          syncthing: s === undefined ? null : { initialMs: round(s.initialMs), firstScanMs: round(s.scanMs), rssMB: s.rssMB },
        },
      }
    },
  )
  await measure(
    {
      id: 'folders.rss.10000',
      title: `${LARGE.toLocaleString('en-US')} files: RSS of the larger of the two kitsync peers`,
      unit: 'MB',
      target: { op: '<=', value: 150 },
    },
    async () => {
      const { k, s } = await both(LARGE)
      return { value: Math.max(...k.rssMB), details: { kitsyncMB: k.rssMB, syncthingMB: s?.rssMB ?? null } }
    },
  )
}
