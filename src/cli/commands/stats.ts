import type { Command } from 'commander'
import type { SyncCounters, SyncStatsView } from '../../core/sync-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

const when = (t: number | undefined): string => (t === undefined ? '-' : new Date(t).toISOString().replace('T', ' ').slice(0, 19))

function row(label: string, c: SyncCounters, width: number): string {
  return [
    label.padEnd(width),
    String(c.sessions).padStart(8),
    String(c.syncs).padStart(6),
    formatBytes(c.bytesIn).padStart(10),
    formatBytes(c.bytesOut).padStart(10),
    String(c.updatesApplied).padStart(8),
    String(c.updatesSent).padStart(8),
    String(c.conflicts).padStart(9),
    `  ${when(c.lastSyncAt)}`,
  ].join('  ')
}

export function formatStats(s: SyncStatsView): string {
  const peerLabel = (id: string): string => `${s.names[id] ?? '?'} …${id.slice(-8)}`
  const width = Math.max(12, ...Object.keys(s.peers).map((id) => peerLabel(id).length), ...Object.keys(s.collections).map((n) => n.length))
  const header = ['', 'SESSIONS', 'SYNCS', 'BYTES IN', 'BYTES OUT', 'UPD IN', 'UPD OUT', 'CONFLICTS', '  LAST SYNC (UTC)']
  const head = (title: string): string =>
    [title.padEnd(width), ...header.slice(1).map((h, i) => (i === header.length - 2 ? h : h.padStart([8, 6, 10, 10, 8, 8, 9][i] ?? 0)))].join('  ')
  const lines = [
    `sync statistics since ${when(s.since)} UTC${s.live ? '' : ' (saved when the peer last ran)'}`,
    '',
    head('TOTAL'),
    row('all devices', s.totals, width),
  ]
  if (Object.keys(s.peers).length > 0) {
    lines.push('', head('DEVICE'))
    for (const [id, c] of Object.entries(s.peers)) lines.push(row(peerLabel(id), c, width))
  }
  if (Object.keys(s.collections).length > 0) {
    lines.push('', head('COLLECTION'))
    for (const [name, c] of Object.entries(s.collections)) lines.push(row(name, c, width))
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('stats')
      .description(
        'sync counters per device and per collection: sessions, exchanges, bytes in and out, updates in (applied here) and out (sent), conflicts resolved',
      ),
    'kitsync stats',
    'kitsync stats --json',
  ).action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const stats = await withWorkspace(io, opts, (ws) => ws.stats())
    print(io, opts, stats, () => formatStats(stats))
  })
}
