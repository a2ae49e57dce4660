import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function parseTimeout(value: string): number {
  const seconds = Number(value)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600)
    throw new KitsyncError('INVALID_ARGUMENT', '--timeout must be a number of seconds between 0 and 3600')
  return Math.round(seconds * 1000)
}

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('fetch')
      .description('add a collection to the items (e.g. an on-demand drawings.* one) and pull it from the connected devices now')
      .argument('<collection>', 'collection name, e.g. drawings.AAPL-1D')
      .option('--timeout <seconds>', 'how long to wait for the devices to answer', '15'),
    'kitsync fetch drawings.AAPL-1D',
  ).action(async (collection: string, options: { timeout: string }, cmd: Command) => {
    const opts = globals(cmd)
    const timeoutMs = parseTimeout(options.timeout)
    const r = await withWorkspace(io, opts, (ws) => ws.fetch(collection, { timeoutMs }))
    print(io, opts, r, () => {
      const head = r.present ? `${r.collection}: ${r.records} record${r.records === 1 ? '' : 's'} here` : `${r.collection}: not on any connected device yet`
      const asked =
        r.peers.length === 0
          ? ''
          : `, asked ${r.peers.length} device${r.peers.length === 1 ? '' : 's'}${r.peers.every((p) => p.complete) ? '' : ` (${r.peers.filter((p) => !p.complete).length} did not answer in time)`}`
      return `${head}${asked}${r.added ? '; added to the items' : ''}${r.note === undefined ? '' : `\n${r.note}`}\n`
    })
  })
}
