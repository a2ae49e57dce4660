// Shared helpers of the benchmark sections (see scripts/bench.js).
//
// A section is a module exporting `title` and `async run(ctx)`; it records its figures with
// `ctx.measure(spec, fn)`, which never throws: a failing figure is recorded with its error and
// the section goes on with the next one.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = join(ROOT, 'bin', 'kitsync.js')
export const PROBE = join(ROOT, 'scripts', 'bench', 'probe.js')

/**
 * A target: `{ op: '>=' | '<=', value }`, compared with the figure's value.
 * Figures without a target (diagnostics) have `target: null` and `passed: null`.
 */
export function checkTarget(target, value) {
  if (target === null || target === undefined || typeof value !== 'number' || !Number.isFinite(value)) return null
  if (target.op === '>=') return value >= target.value
  if (target.op === '<=') return value <= target.value
  throw new Error(`unknown target operator ${target.op}`)
}

export function targetText(target, unit) {
  if (target === null || target === undefined) return '—'
  return `${target.op === '>=' ? '≥' : '≤'} ${formatNumber(target.value)}${unit ? ' ' + unit : ''}`
}

/** The figure recorder handed to a section. */
export function createRecorder(log = (line) => console.log(line)) {
  const figures = []
  const notes = []
  return {
    figures,
    notes,
    log,
    note(text) {
      notes.push(text)
    },
    /**
     * Run `fn` and record one figure. `fn` returns `{ value, details? }` (or a bare number).
     * spec: { id, title, unit, target?, method? }
     */
    async measure(spec, fn) {
      const started = performance.now()
      const figure = {
        id: spec.id,
        title: spec.title,
        value: null,
        unit: spec.unit ?? '',
        target: spec.target ?? null,
        passed: null,
        method: spec.method ?? undefined,
        details: {},
        elapsedMs: 0,
      }
      try {
        const result = await fn()
        const { value, details } = typeof result === 'number' ? { value: result, details: {} } : result
        figure.value = value
        figure.details = details ?? {}
        figure.passed = checkTarget(figure.target, value)
      } catch (err) {
        figure.passed = figure.target === null ? null : false
        figure.error = errorText(err)
      }
      figure.elapsedMs = round(performance.now() - started, 0)
      figures.push(figure)
      log(
        `  ${statusMark(figure)} ${figure.title}: ${figure.error === undefined ? `${formatNumber(figure.value)} ${figure.unit}` : `ERROR ${figure.error}`}` +
          (figure.target === null ? '' : `  (target ${targetText(figure.target, figure.unit)})`),
      )
      return figure
    },
  }
}

export function statusMark(figure) {
  if (figure.error !== undefined) return 'ERR '
  if (figure.passed === null) return 'info'
  return figure.passed ? 'PASS' : 'FAIL'
}

export function errorText(err) {
  if (err instanceof Error) {
    const code = err.code === undefined ? '' : `${err.code}: `
    return `${code}${err.message}`
  }
  return String(err)
}

export function round(x, digits = 1) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export function formatNumber(x) {
  if (typeof x !== 'number') return String(x)
  if (Number.isInteger(x)) return x.toLocaleString('en-US')
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString('en-US')
  return String(round(x, Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3))
}

/** Percentile (0..100) by nearest rank of an unsorted array. */
export function percentile(values, p) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

export function median(values) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export function summary(values, digits = 1) {
  return {
    n: values.length,
    min: round(Math.min(...values), digits),
    median: round(median(values), digits),
    p90: round(percentile(values, 90), digits),
    max: round(Math.max(...values), digits),
  }
}

/** Temporary folders, all removed by `cleanup()` (also when a figure failed). */
export function createTempDirs() {
  const dirs = []
  return {
    async make(prefix) {
      const dir = await mkdtemp(join(tmpdir(), `kitsync-bench-${prefix}-`))
      dirs.push(dir)
      return dir
    },
    async cleanup() {
      for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true, maxRetries: 3 })
    },
  }
}

/** What a home folder's store takes on disk: LevelDB (`store/`) and the snapshot files beside it (`snapshots/`). */
export async function storeSize(home) {
  const level = await dirSize(join(home, 'store'))
  let snapshots = { bytes: 0, files: {} }
  try {
    snapshots = await dirSize(join(home, 'snapshots'))
  } catch {
    // no snapshot kept as a file
  }
  const files = { ...level.files }
  for (const [name, size] of Object.entries(snapshots.files)) files[`../snapshots/${name}`] = size
  return { bytes: level.bytes + snapshots.bytes, files, snapshotFileBytes: snapshots.bytes }
}

/** Sum of the sizes of the files under `dir` (recursively), and the files by name. */
export async function dirSize(dir) {
  let bytes = 0
  const files = {}
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath ?? entry.path, entry.name)
    const size = (await stat(path)).size
    bytes += size
    files[path.slice(dir.length + 1)] = size
  }
  return { bytes, files }
}

/**
 * Run `node scripts/bench/probe.js <name> <json args>` in a fresh process and return the JSON
 * it prints on its last stdout line, with `wallMs` (spawn to exit) added. `killsItself`: the
 * probe ends by SIGKILL on purpose (a simulated crash).
 */
export function runProbe(name, args, { timeoutMs = 60_000, killsItself = false, nodeArgs = [] } = {}) {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, [...nodeArgs, PROBE, name, JSON.stringify(args)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (s) => (out += s))
    child.stderr.setEncoding('utf8').on('data', (s) => (err += s))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const wallMs = performance.now() - started
      const lines = out.trim().split('\n')
      if (timedOut) {
        reject(new Error(`probe ${name} did not finish within ${timeoutMs / 1000} s (killed)`))
        return
      }
      let result
      try {
        result = JSON.parse(lines[lines.length - 1])
      } catch {
        reject(new Error(`probe ${name} exited with ${signal ?? code} without a result: ${(err || out).trim().slice(0, 500)}`))
        return
      }
      if (result.error !== undefined) reject(new Error(`probe ${name}: ${result.error}`))
      else if (code !== 0 && !(killsItself && signal === 'SIGKILL'))
        reject(new Error(`probe ${name} exited with ${signal ?? code}: ${err.trim().slice(0, 500)}`))
      else resolvePromise({ ...result, wallMs })
    })
  })
}

/** Wall time in ms of `node <args>` run to completion, `runs` times; throws on a failed run. */
export function timeNode(args, { runs, check, env } = {}) {
  const times = []
  for (let i = 0; i < runs; i++) {
    const started = performance.now()
    const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000, ...(env === undefined ? {} : { env }) })
    const ms = performance.now() - started
    if (r.error !== undefined) throw r.error
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.signal ?? r.status}: ${r.stderr.trim().slice(0, 300)}`)
    if (check !== undefined) check(r.stdout)
    times.push(ms)
  }
  return times
}

/** `promise`, or a rejection with `message` after `ms` (the timer does not outlive it). */
export function withTimeout(promise, ms, message) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Network flags for every peer a benchmark starts: loopback only, no mDNS, so that nothing is
 * sent to any address outside this machine.
 */
export const LOOPBACK_PEER_ARGS = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']

/**
 * Start `kitsync --home HOME --json peer start ARGS` (loopback, no mDNS by default) and wait for
 * its 'started' line. Returns the child, its pid, the parsed 'started' event, the time it took,
 * and `stop()` (SIGTERM, then SIGKILL past 10 s), which resolves with { code, signal, stdout, stderr }.
 */
export async function startPeer(home, args = LOOPBACK_PEER_ARGS) {
  const started = performance.now()
  const child = spawn(process.execPath, [BIN, '--home', home, '--json', 'peer', 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s))
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (s) => {
      stdout += s
      for (const line of stdout.split('\n')) {
        try {
          const event = JSON.parse(line)
          if (event.event === 'started') resolve(event)
        } catch {
          // not a whole JSON line yet
        }
      }
    })
    child.on('error', reject)
    void exited.then((r) => reject(new Error(`the peer exited with ${r.signal ?? r.code} before starting: ${r.stderr.trim().slice(0, 300)}`)))
  })
  ready.catch(() => undefined) // a rejection after a time-out is not unhandled
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    try {
      return await withTimeout(exited, 10_000, 'the peer did not stop within 10 s of SIGTERM')
    } catch (err) {
      child.kill('SIGKILL')
      await exited
      throw err
    }
  }
  let event
  try {
    event = await withTimeout(ready, 15_000, "the peer did not report 'started' within 15 s")
  } catch (err) {
    await stop().catch(() => undefined)
    throw err
  }
  return { child, pid: child.pid, started: event, startMs: performance.now() - started, stop }
}

/**
 * Change settings in a stopped peer's workspace.json (e.g. `{ maxDevices: 40 }`, which has no
 * command-line option); the peer reads them when it starts.
 */
export async function editWorkspaceConfig(home, changes) {
  const file = join(home, 'workspace.json')
  const config = JSON.parse(await readFile(file, 'utf8'))
  await writeFile(file, JSON.stringify({ ...config, ...changes }, null, 2) + '\n')
}

/** VmRSS and VmHWM (peak) of a process, in bytes, from /proc/PID/status (Linux). */
export async function processMemory(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
    if (m === null) throw new Error(`no ${field} in /proc/${pid}/status`)
    return Number(m[1]) * 1024
  }
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Run `node bin/kitsync.js --home HOME ARGS`; resolves with stdout, rejects on a non-zero exit (or past `timeoutMs`, killed). */
export function cli(home, args, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, '--home', home, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (s) => (out += s))
    child.stderr.setEncoding('utf8').on('data', (s) => (err += s))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new Error(`kitsync ${args.join(' ')} exited with ${signal ?? code}: ${(err || out).trim().slice(0, 300)}`))
    })
  })
}
