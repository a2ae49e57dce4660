import type { Command } from 'commander'
import { UNIT_MS, type DurationUnit } from '../../core/durations.js'
import { KitsyncError } from '../../core/errors.js'
import type { SyncNowReport } from '../../core/sync-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { ProgressBar, type ProgressFigures } from '../progress-bar.js'
import { parseTimeout } from './fetch.js'
import { formatBytes } from './stats.js'

export function formatSyncNow(r: SyncNowReport): string {
  const reached = r.peers.filter((p) => p.reached).length
  const lines = [`sync now: ${reached} of ${r.peers.length} device${r.peers.length === 1 ? '' : 's'} reached in ${r.ms} ms`]
  for (const p of r.peers) {
    const who = `${p.name.slice(0, 16).padEnd(16)} …${p.peerId.slice(-8)}`
    if (!p.reached) lines.push(`  ${who}  unreachable: ${p.error?.code ?? ''} ${p.error?.message ?? ''}`)
    else {
      lines.push(
        `  ${who}  ${p.collections} collection${p.collections === 1 ? '' : 's'}  in ${formatBytes(p.bytesIn)}  out ${formatBytes(p.bytesOut)}  ${p.updatesApplied} update${p.updatesApplied === 1 ? '' : 's'} applied${p.complete ? '' : `  (incomplete: ${p.error?.message ?? 'no answer in time'})`}`,
      )
    }
  }
  return lines.join('\n') + '\n'
}

/** The exchanges with several devices as one bar: their collections and bytes added up. */
export function sumOf(rounds: Iterable<ProgressFigures>): ProgressFigures {
  const sum = { done: 0, total: 0, bytes: 0 }
  for (const r of rounds) {
    sum.done += r.done
    sum.total += r.total
    sum.bytes += r.bytes
  }
  return sum
}

/** `30s`, `10m`, `2h` (a bare number is seconds) as milliseconds; at most 30 days. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smh]?)$/.exec(value.trim())
  const ms = m === null ? NaN : Number(m[1]) * UNIT_MS[(m[2] || 's') as DurationUnit]
  if (!Number.isFinite(ms) || ms <= 0 || ms > 30 * 24 * 3_600_000)
    throw new KitsyncError('INVALID_ARGUMENT', `--for ${value}: expected a duration such as 30s, 10m or 2h (at most 720h)`)
  return Math.round(ms)
}

export function register(program: Command, io: CliIO): void {
  const sync = example(program.command('sync').description('sync operations of the running peer'), 'kitsync sync now')
  example(
    sync
      .command('now')
      .description(
        'exchange with every device of the workspace now (dialing the ones not connected) and report what moved (on a terminal, a progress bar on stderr while it runs); needs the running peer; fails with PEER_UNREACHABLE (exit 7) when no device was reached',
      )
      .option('--timeout <seconds>', 'how long to wait for the devices', '15'),
    'kitsync sync now',
    'kitsync sync now --json --timeout 5',
  ).action(async (options: { timeout: string }, cmd: Command) => {
    const opts = globals(cmd)
    const timeoutMs = parseTimeout(options.timeout)
    // On a terminal: a progress bar on stderr over the exchanges with every device.
    const bar = opts.json !== true && io.stderrIsTTY === true ? new ProgressBar(io.err, 'syncing') : undefined
    const report = await withWorkspace(
      io,
      opts,
      async (ws) => {
        if (bar === undefined) return ws.syncNow({ timeoutMs })
        const rounds = new Map<string, ProgressFigures>()
        const off = ws.on('sync:progress', (e) => {
          rounds.set(e.device, e)
          bar.update(sumOf(rounds.values()))
        })
        await ws.info() // the event subscription is in place once this answers
        try {
          return await ws.syncNow({ timeoutMs })
        } finally {
          off()
          bar.end()
        }
      },
      { mode: 'peer' },
    )
    // Reaching none of the devices is a failure (a script must not take it for a sync); some
    // of them is a success whose report names the others (`reached: false`).
    const missed = report.peers.filter((p) => !p.reached)
    if (report.peers.length > 0 && missed.length === report.peers.length) {
      const who = missed.map((p) => `${p.name} (${p.error?.code ?? 'PEER_UNREACHABLE'})`).join(', ')
      throw new KitsyncError(
        'PEER_UNREACHABLE',
        `none of the ${report.peers.length} device${report.peers.length === 1 ? '' : 's'} was reached in ${report.ms} ms: ${who}; nothing was exchanged`,
        { details: { peers: report.peers } },
      )
    }
    print(io, opts, report, () => formatSyncNow(report))
  })

  example(
    sync
      .command('pause')
      .description(
        'stop exchanging with every device (no dial, sessions closed, their sync streams refused) while reads and writes here go on; kept across a peer restart until sync resume or the --for time',
      )
      .option('--for <duration>', 'resume by itself after this long (30s, 10m, 2h)'),
    'kitsync sync pause',
    'kitsync sync pause --for 10m',
  ).action(async (options: { for?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const forMs = options.for === undefined ? undefined : parseDuration(options.for)
    const pause = await withWorkspace(io, opts, (ws) => ws.pause(forMs === undefined ? {} : { forMs }))
    print(io, opts, pause, () =>
      pause.until === undefined ? 'sync paused until kitsync sync resume\n' : `sync paused until ${new Date(pause.until).toISOString()}\n`,
    )
  })
  example(sync.command('resume').description('end a pause: exchange with every device at once'), 'kitsync sync resume').action(
    async (_options: unknown, cmd: Command) => {
      const opts = globals(cmd)
      const r = await withWorkspace(io, opts, (ws) => ws.resume())
      print(io, opts, r, () => (r.resumed ? 'sync resumed\n' : 'sync was not paused\n'))
    },
  )
}
