import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import type { IndexCheckReport } from '../../core/workspace-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

function describe(r: IndexCheckReport): string {
  if (r.error !== undefined) return `${r.collection}: cannot be read: ${r.error.code}: ${r.error.message}`
  const keys = r.differing.map((k) => JSON.stringify(k)).join(', ') + (r.more === undefined ? '' : ` and ${r.more} more`)
  const problems = [
    ...(r.differing.length > 0 ? [`index rows differ from the records: ${keys}`] : []),
    ...(r.checkpointWrong === true ? ['the index checkpoint is wrong'] : []),
  ]
  const state = problems.length === 0 ? 'ok' : problems.join('; ')
  return `${r.collection}: ${r.records} records, ${state}${r.repaired === true ? ' (rows rebuilt from the records)' : ''}`
}

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('check')
      .description("compare each collection's records with the index that answers reads (loads every collection); --repair rebuilds the index from the records")
      .argument('[collection]', 'check only this collection')
      .option('--repair', 'rebuild index rows that differ from the records (never the records from the index)'),
    'kitsync check',
    'kitsync check journal --repair --json',
  ).action(async (collection: string | undefined, options: { repair?: boolean }, cmd: Command) => {
    const opts = globals(cmd)
    const reports = await withWorkspace(io, opts, (ws) => ws.check(collection, { repair: options.repair === true }))
    print(io, opts, { collections: reports }, () => reports.map(describe).join('\n') + (reports.length > 0 ? '\n' : 'no collections\n'))
    const bad = reports.filter((r) => r.differing.length > 0 || r.checkpointWrong === true)
    if (bad.length > 0) {
      const first = bad[0] as IndexCheckReport
      throw new KitsyncError(
        'DATA_CORRUPTION',
        `${bad.map((r) => r.collection).join(', ')}: index rows differ from the records (${describe(first)}); run kitsync check --repair`,
        { details: { collection: first.collection } },
      )
    }
    const failed = reports.find((r) => r.error !== undefined)
    if (failed?.error !== undefined) throw new KitsyncError('DATA_CORRUPTION', describe(failed), { details: { collection: failed.collection } })
  })
}
