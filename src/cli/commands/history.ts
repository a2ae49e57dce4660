import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import type { HistoryEntry, HistoryOptions, RestoreTarget } from '../../core/history-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

function parseLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new KitsyncError('INVALID_ARGUMENT', `--limit takes a whole number of at least 1, not ${JSON.stringify(text)}`)
  return Number(text)
}

function valueText(e: HistoryEntry): string {
  return e.deleted ? '(deleted)' : JSON.stringify(e.value)
}

/** The head of one version's line, shared by record and file history: time, device (16 columns), id. */
export function versionHead(time: number, device: string, id: string): string {
  return `${new Date(time).toISOString()}  ${device.slice(0, 16).padEnd(16)}  ${id}`
}

export function formatHistory(entries: HistoryEntry[], withKey: boolean): string {
  if (entries.length === 0) return 'no versions\n'
  const lines: string[] = []
  for (const e of entries) {
    const fields = e.fields.length === 0 ? '' : `  fields ${e.fields.join(',')}`
    lines.push(`${versionHead(e.time, e.device, e.stamp)}${withKey ? `  ${e.key}` : ''}${fields}`)
    lines.push(`  ${valueText(e)}`)
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('history')
      .description("list a record's versions, newest first, or a collection's recent changes (kept on this device)")
      .argument('[collection]', 'collection name')
      .argument('[key]', 'record key; omit it for the changes of the whole collection')
      .option('--collection <name>', "list this collection's changes (with --since)")
      .option('--since <time>', 'only versions since: an ISO date (2026-12-01T10:00Z) or a duration back from now (30m, 2h, 3d, 1w)')
      .option('--limit <n>', 'at most this many versions (default: all of a record; 1000 changes of a collection)'),
    'kitsync history alerts aapl-200',
    'kitsync history alerts aapl-200 --json --limit 5',
    'kitsync history --collection alerts --since 2h',
  ).action(async (collection: string | undefined, key: string | undefined, flags: { collection?: string; since?: string; limit?: string }, cmd: Command) => {
    const opts = globals(cmd)
    if (flags.collection !== undefined && collection !== undefined)
      throw new KitsyncError('INVALID_ARGUMENT', 'give the collection either as an argument (with a key) or as --collection, not both')
    const name = flags.collection ?? collection
    if (name === undefined) throw new KitsyncError('INVALID_ARGUMENT', 'name a collection: kitsync history COLLECTION KEY, or --collection NAME --since TIME')
    const limit = parseLimit(flags.limit)
    const options: HistoryOptions = { ...(limit === undefined ? {} : { limit }), ...(flags.since === undefined ? {} : { since: flags.since }) }
    const entries = await withWorkspace(io, opts, (ws) => ws.history(name, key, options))
    print(io, opts, entries, () => formatHistory(entries, key === undefined))
  })
  example(
    program
      .command('restore')
      .description('write an old version of a record again, as a new change that syncs (a delete version deletes)')
      .argument('<collection>', 'collection name')
      .argument('<key>', 'record key')
      .option('--version <stamp>', 'the version to restore: its stamp, from kitsync history')
      .option('--at <time>', 'restore the version current at this time: an ISO date or a duration back from now (2h, 3d)'),
    'kitsync restore alerts aapl-200 --version 0mywpiww0.0000.yKSUKPH5',
    'kitsync restore alerts aapl-200 --at 2h',
  ).action(async (collection: string, key: string, flags: { version?: string; at?: string }, cmd: Command) => {
    const opts = globals(cmd)
    if ((flags.version === undefined) === (flags.at === undefined)) throw new KitsyncError('INVALID_ARGUMENT', 'give exactly one of --version or --at')
    const target: RestoreTarget = flags.version !== undefined ? { version: flags.version } : { at: flags.at as string }
    const r = await withWorkspace(io, opts, (ws) => ws.restore(collection, key, target))
    print(
      io,
      opts,
      r,
      () => `restored ${collection}/${key} to the version of ${new Date(r.restored.time).toISOString()} by ${r.restored.device}: ${valueText(r.restored)}\n`,
    )
  })
}
