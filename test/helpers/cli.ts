/**
 * Helpers for end-to-end tests that run the real CLI (`node bin/kitsync.js`, built from src/
 * into dist/ by `npm run build`) as child processes.
 *
 * Nothing here sleeps and hopes: every wait is for an event (a stdout line, a process exit, a
 * file appearing) and every wait has a deadline that fails the test with what was seen so far.
 * Every process and temporary folder created here is tracked, so `cleanup()` in
 * afterEach/afterAll can kill what is left (by pid, only our own children) and remove it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import type { Stats } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLI = join(REPO_ROOT, 'bin', 'kitsync.js')
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures')

/** Default deadline for one short CLI command. */
export const COMMAND_TIMEOUT_MS = 20_000
/** Default deadline for a peer to print its `started` line. */
export const START_TIMEOUT_MS = 20_000
/** Default deadline for a process to exit after a signal. */
export const STOP_TIMEOUT_MS = 15_000

const liveProcesses = new Set<Proc>()
const tempDirs = new Set<string>()

/** Environment for children: no inherited KITSYNC_HOME or NODE_OPTIONS, so --home alone decides. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  if (!('KITSYNC_HOME' in extra)) delete env.KITSYNC_HOME
  delete env.NODE_OPTIONS
  return env
}

// ---------------------------------------------------------------------------------------------
// Temporary folders

/** A fresh temporary folder, removed by cleanup(). Kept short: the socket path must fit 107 bytes. */
export async function makeTempDir(prefix = 'ks-e2e-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

/** Path of a home folder that does not exist yet, inside a fresh temporary folder. */
export async function makeHome(): Promise<string> {
  return join(await makeTempDir(), 'home')
}

/** Kill every child still running (SIGKILL, by its pid) and remove every temporary folder. */
export async function cleanup(): Promise<void> {
  const procs = [...liveProcesses]
  await Promise.all(
    procs.map(async (p) => {
      if (p.exitInfo === undefined) p.kill('SIGKILL')
      await p.waitForExit(STOP_TIMEOUT_MS).catch(() => undefined)
    }),
  )
  const dirs = [...tempDirs]
  tempDirs.clear()
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
}

// ---------------------------------------------------------------------------------------------
// Processes

export interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface SpawnOptions {
  /** Written to stdin, which is then closed. Without it stdin is closed at once. */
  input?: string | Buffer
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/**
 * A running child process with its output collected: stdout as lines (for waiting on a line)
 * and both streams as text. `exited` settles once the process has exited and its output is
 * fully read (the 'close' event).
 */
export class Proc {
  readonly child: ChildProcess
  readonly pid: number
  readonly description: string
  stdout = ''
  stderr = ''
  /** Complete stdout lines so far (without the newline). */
  readonly lines: string[] = []
  exitInfo: ExitInfo | undefined
  readonly exited: Promise<ExitInfo>
  private readonly events = new EventEmitter()
  private partial = ''

  constructor(command: string, args: string[], options: SpawnOptions = {}) {
    this.description = [command, ...args].map((a) => (a.length > 80 ? a.slice(0, 77) + '...' : a)).join(' ')
    this.child = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: childEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    if (this.child.pid === undefined) throw new Error(`could not spawn ${this.description}`)
    this.pid = this.child.pid
    liveProcesses.add(this)
    this.events.setMaxListeners(0)
    this.child.stdout?.setEncoding('utf8')
    this.child.stderr?.setEncoding('utf8')
    this.child.stdout?.on('data', (chunk: string) => {
      this.stdout += chunk
      const parts = (this.partial + chunk).split('\n')
      this.partial = parts.pop() ?? ''
      for (const line of parts) {
        this.lines.push(line)
        this.events.emit('line', line)
      }
    })
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk
    })
    // A child that exits before reading its stdin must not fail the test with EPIPE.
    this.child.stdin?.on('error', () => undefined)
    if (options.input !== undefined) this.child.stdin?.end(options.input)
    else this.child.stdin?.end()
    this.exited = new Promise<ExitInfo>((resolveExit, rejectExit) => {
      this.child.once('error', (err) => {
        liveProcesses.delete(this)
        rejectExit(err)
      })
      this.child.once('close', (code, signal) => {
        this.exitInfo = { code, signal }
        liveProcesses.delete(this)
        this.events.emit('exit', this.exitInfo)
        resolveExit(this.exitInfo)
      })
    })
    this.exited.catch(() => undefined)
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitInfo === undefined) this.child.kill(signal)
  }

  /** What the process printed, for failure messages. */
  transcript(): string {
    return `${this.description}\n--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`
  }

  /**
   * Resolves with the first stdout line (from line index `from` on) that `match` accepts.
   * Rejects if the process exits first or the deadline passes.
   */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what = 'a matching line', from = 0): Promise<string> {
    return new Promise((resolveLine, rejectLine) => {
      for (let i = from; i < this.lines.length; i++) {
        const line = this.lines[i] as string
        if (match(line)) return resolveLine(line)
      }
      const done = (): void => {
        clearTimeout(timer)
        this.events.off('line', onLine)
        this.events.off('exit', onExit)
      }
      const onLine = (line: string): void => {
        if (!match(line)) return
        done()
        resolveLine(line)
      }
      const onExit = (info: ExitInfo): void => {
        done()
        rejectLine(new Error(`process exited (${JSON.stringify(info)}) before printing ${what}\n${this.transcript()}`))
      }
      const timer = setTimeout(() => {
        done()
        rejectLine(new Error(`no ${what} within ${timeoutMs} ms\n${this.transcript()}`))
      }, timeoutMs)
      if (this.exitInfo !== undefined) return onExit(this.exitInfo)
      this.events.on('line', onLine)
      this.events.on('exit', onExit)
    })
  }

  /** Resolves once `count` complete stdout lines have arrived. */
  waitForLineCount(count: number, timeoutMs: number): Promise<void> {
    let seen = 0
    return this.waitForLine(() => ++seen >= count, timeoutMs, `${count} lines`).then(() => undefined)
  }

  /** Resolves with the exit status; rejects (and SIGKILLs the process) if it outlives the deadline. */
  async waitForExit(timeoutMs: number): Promise<ExitInfo> {
    if (this.exitInfo !== undefined) return this.exitInfo
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, rejectExit) => {
      timer = setTimeout(() => {
        this.kill('SIGKILL')
        rejectExit(new Error(`process did not exit within ${timeoutMs} ms (killed it)\n${this.transcript()}`))
      }, timeoutMs)
    })
    try {
      return await Promise.race([this.exited, deadline])
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Spawn `node bin/kitsync.js [--home home] ...args` without waiting for it. */
export function spawnKitsync(home: string | undefined, args: string[], options: SpawnOptions = {}): Proc {
  return new Proc(process.execPath, [CLI, ...(home === undefined ? [] : ['--home', home]), ...args], options)
}

/** Spawn `node script ...args` (a fixture script) without waiting for it. */
export function spawnNode(script: string, args: string[], options: SpawnOptions = {}): Proc {
  return new Proc(process.execPath, [script, ...args], options)
}

export interface CliResult extends ExitInfo {
  stdout: string
  stderr: string
}

/** Run one CLI command to completion and collect its output and exit status. */
export async function kitsync(home: string | undefined, args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  const proc = spawnKitsync(home, args, options)
  const info = await proc.waitForExit(options.timeoutMs ?? COMMAND_TIMEOUT_MS)
  return { ...info, stdout: proc.stdout, stderr: proc.stderr }
}

/** Run a CLI command that must succeed (exit 0, empty stderr); returns its stdout. */
export async function kitsyncOk(home: string | undefined, args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<string> {
  const r = await kitsync(home, args, options)
  if (r.code !== 0 || r.stderr !== '') {
    throw new Error(`kitsync ${args.join(' ')} failed: exit ${r.code ?? r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`)
  }
  return r.stdout
}

/** Run a CLI command with --json that must succeed; returns its stdout parsed as one JSON document. */
export async function kitsyncJson<T = unknown>(home: string | undefined, args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<T> {
  return JSON.parse(await kitsyncOk(home, [...args, '--json'], options)) as T
}

/**
 * Run tasks at most `limit` at a time; results in task order. Without a peer, every CLI
 * process takes the store's lock in turn and waits only a few seconds for it, so commands
 * against one home folder are run a few at a time rather than all at once.
 */
export async function runLimited<T extends readonly (() => Promise<unknown>)[]>(
  limit: number,
  tasks: T,
): Promise<{ -readonly [K in keyof T]: Awaited<ReturnType<T[K]>> }> {
  const results: unknown[] = new Array(tasks.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++
      results[i] = await (tasks[i] as () => Promise<unknown>)()
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, tasks.length)) }, worker))
  return results as { -readonly [K in keyof T]: Awaited<ReturnType<T[K]>> }
}

// ---------------------------------------------------------------------------------------------
// Peers

export interface StartedEvent {
  event: 'started'
  pid: number
  socket: string
  home: string
  deviceId: string
  workspaceId: string
  name: string
  version: string
}

export interface RunningPeer {
  proc: Proc
  started: StartedEvent
}

let isolation: Promise<string[]> | undefined

/**
 * Flags that keep a test peer off the network, if this build of the CLI has them: listen on a
 * random loopback port (not the fixed default port, which parallel peers would fight over), no
 * mDNS (so peers of other tests are not discovered), and the HTTP API on a random port. Asked once from `peer start --help`.
 */
export function isolatedPeerArgs(): Promise<string[]> {
  isolation ??= (async () => {
    const help = await kitsyncOk(undefined, ['peer', 'start', '--help'])
    return [
      ...(/--listen\b/.test(help) ? ['--listen', '/ip4/127.0.0.1/tcp/0'] : []),
      ...(/--no-mdns\b/.test(help) ? ['--no-mdns'] : []),
      ...(/--http-port\b/.test(help) ? ['--http-port', '0'] : []),
    ]
  })()
  return isolation
}

/**
 * Start `kitsync peer start --json` and wait, with a deadline, for its `started` line.
 * Unless `isolate` is false, it is kept off the network (see isolatedPeerArgs); flags the
 * caller passes in `args` (its own --listen, --no-mdns) take the place of those defaults.
 */
export async function startPeer(home: string, options: { args?: string[]; timeoutMs?: number; isolate?: boolean } = {}): Promise<RunningPeer> {
  const args = options.args ?? []
  const defaults: string[] = []
  if (options.isolate ?? true) {
    const isolated = await isolatedPeerArgs()
    const listenAt = isolated.indexOf('--listen')
    if (listenAt >= 0 && !args.includes('--listen')) defaults.push(...isolated.slice(listenAt, listenAt + 2))
    if (isolated.includes('--no-mdns') && !args.includes('--no-mdns')) defaults.push('--no-mdns')
    const httpAt = isolated.indexOf('--http-port')
    if (httpAt >= 0 && !args.includes('--http-port') && !args.includes('--no-http')) defaults.push(...isolated.slice(httpAt, httpAt + 2))
  }
  const proc = spawnKitsync(home, ['peer', 'start', '--json', ...defaults, ...args])
  const line = await proc.waitForLine(
    (l) => {
      try {
        return (JSON.parse(l) as { event?: unknown }).event === 'started'
      } catch {
        return false
      }
    },
    options.timeoutMs ?? START_TIMEOUT_MS,
    "the peer's started line",
  )
  return { proc, started: JSON.parse(line) as StartedEvent }
}

/** Send SIGTERM (or another signal) and wait, with a deadline, for the process to exit. */
export async function stopProc(proc: Proc, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS): Promise<ExitInfo> {
  proc.kill(signal)
  return proc.waitForExit(timeoutMs)
}

export interface CommandHelp {
  /** The command as arguments: `[]` for kitsync itself, `['set']`, `['peer', 'start']`, … */
  args: string[]
  /** What `kitsync <args> --help` did. */
  result: CliResult
}

/**
 * `--help` of every command of the CLI, found by reading the `Commands:` section of each help
 * (groups such as `peer` are expanded), so commands added later are covered too. Runs a few
 * at a time.
 */
export async function helpOfEveryCommand(): Promise<CommandHelp[]> {
  const out: CommandHelp[] = []
  let level: string[][] = [[]]
  while (level.length > 0) {
    const queue = [...level]
    const found: CommandHelp[] = []
    const worker = async (): Promise<void> => {
      for (let args = queue.shift(); args !== undefined; args = queue.shift()) {
        found.push({ args, result: await kitsync(undefined, [...args, '--help']) })
      }
    }
    await Promise.all([worker(), worker(), worker()])
    out.push(...found)
    level = found.flatMap(({ args, result }) => {
      const section = /\nCommands:\n((?: {2}.*\n)+)/.exec(result.stdout)?.[1] ?? ''
      return [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)]
        .map((m) => m[1] as string)
        .filter((n) => n !== 'help')
        .map((n) => [...args, n])
    })
  }
  return out.sort((a, b) => (a.args.join(' ') < b.args.join(' ') ? -1 : 1))
}

// ---------------------------------------------------------------------------------------------
// Files

export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Permission bits of a file (e.g. 0o600). */
export async function fileMode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777
}

/**
 * Wait until `check` returns a value other than undefined, re-checking every few milliseconds,
 * failing after the deadline. For conditions with no event to listen to (a file appearing).
 */
export async function waitUntil<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Wait until `path` exists (and, if given, `accept` its stat). */
export function waitForPath(path: string, timeoutMs: number, accept: (st: Stats) => boolean = () => true): Promise<Stats> {
  return waitUntil(
    async () => {
      const st = await statOrUndefined(path)
      return st !== undefined && accept(st) ? st : undefined
    },
    timeoutMs,
    path,
  )
}

// ---------------------------------------------------------------------------------------------
// Assertions

/** The one-line error a failed command prints: `kitsync: CODE: message`. */
export function parseErrorLine(stderr: string): { code: string; message: string } {
  const m = /^kitsync: ([A-Z_]+): (.+)\n$/.exec(stderr)
  if (m === null) throw new Error(`stderr is not one 'kitsync: CODE: message' line: ${JSON.stringify(stderr)}`)
  return { code: m[1] as string, message: m[2] as string }
}

/**
 * Assert that a command failed with `exit` and the error `code`, printed as the single line
 * `kitsync: CODE: message` on stderr, with nothing on stdout. Returns the message.
 */
export function expectCliError(r: CliResult, code: string, exit: number): string {
  const context = `stdout=${JSON.stringify(r.stdout)} stderr=${JSON.stringify(r.stderr)}`
  expect(r.signal, context).toBeNull()
  expect({ exit: r.code, code: /^kitsync: ([A-Z_]+):/.exec(r.stderr)?.[1] }, context).toEqual({ exit, code })
  expect(r.stdout, context).toBe('')
  return parseErrorLine(r.stderr).message
}

/** Same for `--json`: stderr is exactly one JSON line `{"error":{"code":...,"message":...}}`. */
export function expectJsonCliError(r: CliResult, code: string, exit: number): { code: string; message: string; details?: Record<string, unknown> } {
  const context = `stdout=${JSON.stringify(r.stdout)} stderr=${JSON.stringify(r.stderr)}`
  expect(r.code, context).toBe(exit)
  expect(r.stdout, context).toBe('')
  expect(r.stderr.endsWith('\n'), context).toBe(true)
  expect(r.stderr.slice(0, -1).includes('\n'), context).toBe(false)
  const parsed = JSON.parse(r.stderr) as { error: { code: string; message: string; details?: Record<string, unknown> } }
  expect(parsed.error.code, context).toBe(code)
  expect(typeof parsed.error.message, context).toBe('string')
  return parsed.error
}

// ---------------------------------------------------------------------------------------------
// Randomness

/** A small seeded PRNG (mulberry32): the same seed gives the same kill points. */
export function prng(seed: number): { next: () => number; int: (min: number, max: number) => number } {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { next, int: (min, max) => min + Math.floor(next() * (max - min + 1)) }
}

/** Seed from KITSYNC_TEST_SEED if set (to replay a failure), else a fixed default. */
export function testSeed(fallback: number): number {
  const s = process.env.KITSYNC_TEST_SEED
  return s === undefined || s === '' ? fallback : Number.parseInt(s, 10)
}

/** Whether a process of that pid exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Kill (SIGKILL) every process of `pids` still there, wait until each is gone, and forget them: what afterEach does for detached peers. */
export async function killPids(pids: Set<number>): Promise<void> {
  for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL')
  await Promise.all([...pids].map((pid) => waitUntil(async () => (pidAlive(pid) ? undefined : true), STOP_TIMEOUT_MS, `pid ${pid} to be gone`)))
  pids.clear()
}
