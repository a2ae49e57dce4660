/**
 * The peer as a background service: `peer start --detach`, `peer stop`, `peer restart` and
 * `peer logs`. How a detached peer is started and logs: ../../api/detached-peer.ts.
 */
import { open, readFile, stat } from 'node:fs/promises'
import { watch } from 'node:fs'
import type { Command } from 'commander'
import { isKitsyncError, KitsyncError } from '../../core/errors.js'
import { homePaths, readWorkspaceConfig, resolveHome, writeWorkspaceConfig, type HomePaths } from '../../store/home.js'
import { logFile, rememberedArgs, startDetachedPeer, stopPeer, type DetachedPeer, type StartArgs } from '../../api/detached-peer.js'
import { example, globals, print, type CliIO, type GlobalOptions } from '../context.js'
import { formatLogChunk } from '../log-format.js'
import { logFlagsAsArgs, type LogFlags } from './peer-log-options.js'

/** How long `stop` waits for the peer to be gone, unless --timeout says otherwise. */
export const STOP_TIMEOUT_MS = 20_000

export { logFile, rememberedArgs, stopPeer, type DetachedPeer, type StartArgs }

/** `peer start --detach`: see api/detached-peer.ts. */
export function startDetached(io: CliIO, opts: GlobalOptions, args: StartArgs): Promise<DetachedPeer> {
  return startDetachedPeer({ ...(opts.home === undefined ? {} : { home: opts.home }), args, env: io.env })
}

/** Print the log file (its last `lines` lines when given); `follow`: go on until interrupted. */
export async function printLogs(io: CliIO, paths: HomePaths, options: { lines?: number; follow: boolean; raw?: boolean }): Promise<void> {
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
  // Raw JSON lines with --json; else each line with its time and level first (log-format.ts).
  let carry = ''
  const out = (chunk: string): void => {
    if (options.raw === true) return io.out(chunk)
    const formatted = formatLogChunk(chunk, carry)
    carry = formatted.carry
    io.out(formatted.text)
  }
  out(text)
  if (!options.follow) {
    if (carry !== '') io.out(carry + '\n')
    return
  }
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
        if (size < offset) offset = 0 // the file was rotated, emptied or replaced: read it from the start
        if (size > offset) {
          const fd = await open(log, 'r')
          try {
            const buffer = Buffer.alloc(size - offset)
            const { bytesRead } = await fd.read(buffer, 0, buffer.length, offset)
            offset += bytesRead
            out(buffer.subarray(0, bytesRead).toString('utf8'))
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

interface DetachFlags extends LogFlags {
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
    ...logFlagsAsArgs(flags),
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
      .command('auto-spawn')
      .description(
        'whether a command that needs the running peer (peers, sync now) starts it in the background when none runs (workspace.json "autoSpawn", default off); without an argument, print the setting',
      )
      .argument('[on|off]', 'the new setting'),
    'kitsync peer auto-spawn on',
    'kitsync peer auto-spawn --json',
  ).action(async (value: string | undefined, _options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const paths = homePaths(resolveHome(opts.home, io.env))
    if (value !== undefined && value !== 'on' && value !== 'off')
      throw new KitsyncError('INVALID_ARGUMENT', `auto-spawn takes on or off, not ${JSON.stringify(value)}`)
    const config = await readWorkspaceConfig(paths)
    if (config === undefined) throw new KitsyncError('NOT_FOUND', `no workspace in ${paths.home}: create one with kitsync init (or join one)`)
    if (value !== undefined && (config.autoSpawn === true) !== (value === 'on')) await writeWorkspaceConfig(paths, { ...config, autoSpawn: value === 'on' })
    const autoSpawn = value === undefined ? config.autoSpawn === true : value === 'on'
    print(io, opts, { autoSpawn }, () => `auto-spawn ${autoSpawn ? 'on: a command that needs the peer starts it in the background' : 'off'}\n`)
  })
  example(
    peer
      .command('logs')
      .description('print the log of the background peer (HOME/peer.log), each line with its time (UTC) and level; --json prints the raw JSON lines')
      .option('-f, --follow', 'go on printing what is added, until Ctrl-C')
      .option('-n, --lines <n>', 'only the last N lines', parseLines),
    'kitsync peer logs -n 20',
    'kitsync peer logs -f',
    'kitsync peer logs --json -n 100 | jq .event',
  ).action(async (options: { follow?: boolean; lines?: number }, cmd: Command) => {
    const opts = globals(cmd)
    await printLogs(io, homePaths(resolveHome(opts.home, io.env)), {
      follow: options.follow === true,
      raw: opts.json === true,
      ...(options.lines === undefined ? {} : { lines: options.lines }),
    })
  })
}
