/**
 * The peer as a background service: `peer start --detach`, `peer stop`, `peer restart` and
 * `peer logs`. A detached peer is `bin/kitsync.js --home HOME peer start --headless ...` in its
 * own session, its stdout and stderr appended to HOME/peer.log (0600); the flags it was started
 * with are kept in HOME/peer.args.json, so `peer restart` starts it the same way.
 */
import { spawn } from 'node:child_process'
import { chmod, open, readFile, stat, writeFile } from 'node:fs/promises'
import { watch } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { isKitsyncError, KitsyncError } from '../../core/errors.js'
import { ensureHome, homePaths, resolveHome, type HomePaths } from '../../store/home.js'
import { ControlClient } from '../../api/control-client.js'
import type { WorkspaceStatus } from '../../core/workspace-types.js'
import { example, globals, print, type CliIO, type GlobalOptions } from '../context.js'

const CLI_ENTRY = fileURLToPath(new URL('../../../bin/kitsync.js', import.meta.url))
/** How long `start --detach` waits for the peer to listen and answer on its socket. */
export const DETACH_START_TIMEOUT_MS = 30_000
/** How long `stop` waits for the peer to be gone, unless --timeout says otherwise. */
export const STOP_TIMEOUT_MS = 20_000
const POLL_MS = 50

export function logFile(paths: HomePaths): string {
  return join(paths.home, 'peer.log')
}

function argsFile(paths: HomePaths): string {
  return join(paths.home, 'peer.args.json')
}

export interface DetachedPeer {
  pid: number
  socket: string
  log: string
  listen: string[]
  /** The URL of its HTTP API, when it serves one (docs/HTTP-API.md). */
  http?: string
}

/** The `peer start` flags (without --detach and --headless) as they are remembered. */
export type StartArgs = string[]

/**
 * Start the peer in the background with `args` (the `peer start` flags) and resolve once it
 * listens and its control socket answers. A peer that exits first fails this with the error
 * it logged (PEER_ALREADY_RUNNING, PORT_IN_USE, ...).
 */
export async function startDetached(io: CliIO, opts: GlobalOptions, args: StartArgs): Promise<DetachedPeer> {
  const paths = homePaths(resolveHome(opts.home, io.env))
  await ensureHome(paths.home)
  const log = logFile(paths)
  const fd = await open(log, 'a', 0o600)
  let child
  let offset: number
  try {
    await fd.chmod(0o600) // a log file made before, or by hand, is private too
    offset = (await fd.stat()).size
    child = spawn(process.execPath, [CLI_ENTRY, '--home', paths.home, 'peer', 'start', '--headless', ...args], {
      detached: true, // its own session and process group: it outlives this CLI and its terminal
      stdio: ['ignore', fd.fd, fd.fd],
      env: io.env,
    })
  } finally {
    await fd.close()
  }
  const pid = child.pid
  if (pid === undefined) throw new KitsyncError('INTERNAL', `could not start ${process.execPath} ${CLI_ENTRY}`)
  let exited = false
  child.once('exit', () => {
    exited = true
  })
  child.once('error', () => {
    exited = true
  })
  try {
    const deadline = Date.now() + DETACH_START_TIMEOUT_MS
    for (;;) {
      const text = (await readFile(log)).subarray(offset).toString('utf8')
      const started = startedLine(text, pid)
      if (started !== undefined) {
        const client = await ControlClient.connect(paths.socket).catch(() => undefined)
        client?.close()
        if (client !== undefined && client.peer?.pid === pid) {
          // Remembered once it runs: a start that failed (one runs already) changes nothing.
          await writeFile(argsFile(paths), JSON.stringify(args) + '\n', { mode: 0o600 })
          await chmod(argsFile(paths), 0o600)
          return { pid, socket: paths.socket, log, listen: started.listen ?? [], ...(started.http === undefined ? {} : { http: started.http }) }
        }
      }
      if (exited) throw failureFrom(await readFile(log).then((b) => b.subarray(offset).toString('utf8')), log)
      if (Date.now() > deadline) {
        throw new KitsyncError('INTERNAL', `the peer (pid ${pid}) did not start within ${DETACH_START_TIMEOUT_MS / 1000} s; it is still running, see ${log}`, {
          details: { pid },
        })
      }
      await delay(POLL_MS)
    }
  } finally {
    child.unref()
  }
}

function startedLine(text: string, pid: number): { listen?: string[]; http?: string } | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const entry = JSON.parse(line) as { event?: string; pid?: number; listen?: string[]; http?: string }
      if (entry.event === 'started' && entry.pid === pid) return entry
    } catch {
      // a line cut short while the peer writes it: read again on the next round
    }
  }
  return undefined
}

/** The error a peer that exited at start-up printed (`kitsync: CODE: message`), as ours. */
function failureFrom(text: string, log: string): KitsyncError {
  const match = [...text.matchAll(/^kitsync: ([A-Z_]+): (.*)$/gm)].pop()
  if (match !== undefined) {
    const error = KitsyncError.fromJSON({ code: match[1], message: match[2] })
    if (error.code !== 'CONTROL_PROTOCOL') return error
  }
  return new KitsyncError('INTERNAL', `the peer exited at start-up; see ${log}`)
}

/** The remembered `peer start` flags of the last `start --detach` ([] when there are none). */
export async function rememberedArgs(paths: HomePaths): Promise<StartArgs> {
  try {
    const value = JSON.parse(await readFile(argsFile(paths), 'utf8')) as unknown
    if (Array.isArray(value) && value.every((a) => typeof a === 'string')) return value as string[]
  } catch {
    // none remembered (no detached start yet) or unreadable: start with no flags
  }
  return []
}

/**
 * Stop the peer of the home: SIGTERM to the pid its control socket reports (it stops cleanly on
 * it, as on Ctrl-C), or to the pid in peer.pid while it has no socket yet, then wait until the
 * process is gone. PEER_NOT_RUNNING when no peer runs.
 */
export async function stopPeer(paths: HomePaths, timeoutMs: number): Promise<{ pid: number }> {
  const pid = (await socketPid(paths)) ?? (await starting(paths))
  if (pid === undefined) throw new KitsyncError('PEER_NOT_RUNNING', `no peer is running for ${paths.home}`)
  try {
    process.kill(pid, 'SIGTERM')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return { pid } // gone in between
    throw new KitsyncError('PERMISSION_DENIED', `cannot stop the peer (pid ${pid}): ${(err as Error).message}`, { cause: err })
  }
  const deadline = Date.now() + timeoutMs
  while (alive(pid)) {
    if (Date.now() > deadline) {
      throw new KitsyncError(
        'PEER_STOP_TIMEOUT',
        `the peer (pid ${pid}) did not stop within ${timeoutMs / 1000} s; it is still running (kill ${pid} to force it)`,
        {
          details: { pid },
        },
      )
    }
    await delay(POLL_MS)
  }
  return { pid }
}

/** How long `stop` waits for the peer's answer before it goes by peer.pid (a wedged peer). */
const HELLO_TIMEOUT_MS = 3_000

/**
 * The pid of the peer serving the control socket; undefined when nothing answers in time, or
 * when what serves it is not a peer (a `watch` without one serves the socket itself).
 */
async function socketPid(paths: HomePaths): Promise<number | undefined> {
  // A peer of another version is stopped all the same (by its pid file): that is what a restart after an upgrade needs.
  const connecting = ControlClient.connect(paths.socket).catch((err: unknown) => {
    if (isKitsyncError(err, 'VERSION_MISMATCH')) return undefined
    throw err
  })
  const asking = connecting.then(async (client) => {
    if (client === undefined) return undefined
    try {
      const status = (await client.request('status')) as WorkspaceStatus
      return status.peer.running ? status.peer.pid : undefined
    } finally {
      client.close()
    }
  })
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), HELLO_TIMEOUT_MS)
  })
  try {
    return await Promise.race([asking, late])
  } finally {
    clearTimeout(timer)
    // An answer that comes after the deadline is dropped; its connection is closed above.
    asking.catch(() => undefined)
  }
}

/** The pid in peer.pid, if that process is alive and is a kitsync peer (a peer starting up). */
async function starting(paths: HomePaths): Promise<number | undefined> {
  const pid = parseInt(await readFile(paths.pid, 'utf8').catch(() => ''), 10)
  if (!Number.isSafeInteger(pid) || pid <= 0 || !alive(pid)) return undefined
  // A stale pid file may name a process that reused the pid: only a kitsync one is signalled.
  if (process.platform === 'linux') {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (!cmdline.includes('kitsync')) return undefined
  }
  return pid
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Print the log file (its last `lines` lines when given); `follow`: go on until interrupted. */
export async function printLogs(io: CliIO, paths: HomePaths, options: { lines?: number; follow: boolean }): Promise<void> {
  const log = logFile(paths)
  let text: string
  try {
    text = await readFile(log, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new KitsyncError('HOME_UNREADABLE', `cannot read ${log}: ${(err as Error).message}`, { cause: err })
    throw new KitsyncError('NOT_FOUND', `no log file ${log}: it is written by a peer started with kitsync peer start --detach`)
  }
  let offset = Buffer.byteLength(text)
  if (options.lines !== undefined) {
    const all = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n')
    text = options.lines === 0 ? '' : all.slice(-options.lines).join('\n') + (text.endsWith('\n') ? '\n' : '')
  }
  io.out(text)
  if (!options.follow) return
  let reading = false
  let again = false
  const readMore = async (): Promise<void> => {
    if (reading) {
      again = true
      return
    }
    reading = true
    try {
      do {
        again = false
        const size = (await stat(log).catch(() => undefined))?.size ?? 0
        if (size < offset) offset = 0 // the file was emptied or replaced: read it from the start
        if (size > offset) {
          const fd = await open(log, 'r')
          try {
            const buffer = Buffer.alloc(size - offset)
            const { bytesRead } = await fd.read(buffer, 0, buffer.length, offset)
            offset += bytesRead
            io.out(buffer.subarray(0, bytesRead).toString('utf8'))
          } finally {
            await fd.close()
          }
        }
      } while (again)
    } finally {
      reading = false
    }
  }
  const onChange = (): void => void readMore().catch(() => undefined) // read again on the next change
  const watcher = watch(log, onChange)
  watcher.on('error', () => undefined) // the file replaced: the timer below goes on reading it
  // fs.watch misses a file that was replaced (a new one after it was removed): look every second too.
  const timer = setInterval(onChange, 1000)
  try {
    await io.interrupted()
  } finally {
    clearInterval(timer)
    watcher.close()
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

interface DetachFlags {
  listen?: string[]
  bootstrap?: string[]
  mdns?: boolean
  name?: string
  relay?: boolean
  items?: string
  localOnly?: string
  httpPort?: number
  http?: boolean
}

/** The `peer start` flags given, as arguments for the detached peer (and to remember). */
export function startFlagsAsArgs(flags: DetachFlags): StartArgs {
  return [
    ...(flags.listen ?? []).flatMap((a) => ['--listen', a]),
    ...(flags.bootstrap ?? []).flatMap((a) => ['--bootstrap', a]),
    ...(flags.mdns === false ? ['--no-mdns'] : []),
    ...(flags.name === undefined ? [] : ['--name', flags.name]),
    ...(flags.relay === true ? ['--relay'] : []),
    ...(flags.items === undefined ? [] : ['--items', flags.items]),
    ...(flags.localOnly === undefined ? [] : ['--local-only', flags.localOnly]),
    ...(flags.httpPort === undefined ? [] : ['--http-port', String(flags.httpPort)]),
    ...(flags.http === false ? ['--no-http'] : []),
  ]
}

/** `peer start --detach` (and the start of `peer restart`): start, then print pid and addresses. */
export async function startDetachedAndPrint(io: CliIO, opts: GlobalOptions, args: StartArgs): Promise<void> {
  const peer = await startDetached(io, opts, args)
  print(io, opts, { event: 'started', detached: true, ...peer }, () =>
    [
      `kitsync peer running in the background (pid ${peer.pid})`,
      `  control   ${peer.socket}`,
      ...peer.listen.map((a, i) => `  ${i === 0 ? 'listening' : '         '} ${a}`),
      ...(peer.http === undefined ? [] : [`  http      ${peer.http} (token: kitsync dashboard --json)`]),
      `  log       ${peer.log}`,
      'Stop it with: kitsync peer stop',
      '',
    ].join('\n'),
  )
}

function parseSeconds(value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new KitsyncError('INVALID_ARGUMENT', `--timeout wants a number of seconds above 0, not ${JSON.stringify(value)}`)
  return n
}

function parseLines(value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new KitsyncError('INVALID_ARGUMENT', `-n wants a whole number of lines, not ${JSON.stringify(value)}`)
  return n
}

/** `peer stop`, `peer restart`, `peer logs` under `peer`. */
export function registerService(peer: Command, io: CliIO): void {
  example(
    peer
      .command('stop')
      .description(
        'stop the running peer of this home cleanly (SIGTERM to its pid) and wait until it is gone; PEER_NOT_RUNNING (exit 4) when none runs, PEER_STOP_TIMEOUT (exit 6) when it is still running at the deadline',
      )
      .option('--timeout <seconds>', `how long to wait for it (default ${STOP_TIMEOUT_MS / 1000})`, parseSeconds),
    'kitsync peer stop',
  ).action(async (options: { timeout?: number }, cmd: Command) => {
    const opts = globals(cmd)
    const paths = homePaths(resolveHome(opts.home, io.env))
    const { pid } = await stopPeer(paths, options.timeout === undefined ? STOP_TIMEOUT_MS : options.timeout * 1000)
    print(io, opts, { event: 'stopped', pid }, () => `kitsync peer stopped (pid ${pid})\n`)
  })
  example(
    peer
      .command('restart')
      .description('stop the running peer (if one runs) and start it again in the background with the flags of the last peer start --detach')
      .option('--timeout <seconds>', `how long to wait for the stop (default ${STOP_TIMEOUT_MS / 1000})`, parseSeconds),
    'kitsync peer restart',
  ).action(async (options: { timeout?: number }, cmd: Command) => {
    const opts = globals(cmd)
    const paths = homePaths(resolveHome(opts.home, io.env))
    await stopPeer(paths, options.timeout === undefined ? STOP_TIMEOUT_MS : options.timeout * 1000).catch((err: unknown) => {
      if (!isKitsyncError(err, 'PEER_NOT_RUNNING')) throw err // none ran: start it all the same
    })
    await startDetachedAndPrint(io, opts, await rememberedArgs(paths))
  })
  example(
    peer
      .command('logs')
      .description('print the log of the background peer (HOME/peer.log)')
      .option('-f, --follow', 'go on printing what is added, until Ctrl-C')
      .option('-n, --lines <n>', 'only the last N lines', parseLines),
    'kitsync peer logs -n 20',
    'kitsync peer logs -f',
  ).action(async (options: { follow?: boolean; lines?: number }, cmd: Command) => {
    const opts = globals(cmd)
    await printLogs(io, homePaths(resolveHome(opts.home, io.env)), {
      follow: options.follow === true,
      ...(options.lines === undefined ? {} : { lines: options.lines }),
    })
  })
}
