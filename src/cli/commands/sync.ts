import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import type { SyncNowReport } from '../../core/sync-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
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

export function register(program: Command, io: CliIO): void {
  const sync = example(program.command('sync').description('sync operations of the running peer'), 'kitsync sync now')
  example(
    sync
      .command('now')
      .description(
        'exchange with every device of the workspace now (dialing the ones not connected) and report what moved; needs the running peer; fails with PEER_UNREACHABLE (exit 7) when no device was reached',
      )
      .option('--timeout <seconds>', 'how long to wait for the devices', '15'),
    'kitsync sync now',
    'kitsync sync now --json --timeout 5',
  ).action(async (options: { timeout: string }, cmd: Command) => {
    const opts = globals(cmd)
    const timeoutMs = parseTimeout(options.timeout)
    const report = await withWorkspace(io, opts, (ws) => ws.syncNow({ timeoutMs }), { mode: 'peer' })
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
}
