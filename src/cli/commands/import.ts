import type { Command } from 'commander'
import type { ImportReport } from '../../core/transfer-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('import')
      .description(
        'load a JSON export (kitsync export) or a git export folder (kitsync export --git) as new writes, each record checked by its collection kind; ' +
          'a refused record fails the whole import and nothing is written. Records are added or changed, never deleted unless --prune',
      )
      .argument('<source>', 'a JSON export file, or the folder of a git export')
      .option('--dry-run', 'report what the import would change, and change nothing')
      .option('--prune', 'also delete the records of the imported collections that the source does not hold'),
    'kitsync import backup.json --dry-run',
    'kitsync import ~/kitsync-export --json',
  ).action(async (source: string, options: { dryRun?: boolean; prune?: boolean }, cmd: Command) => {
    const opts = globals(cmd)
    // Read before the workspace is opened: a source that cannot be read leaves the store alone.
    const { readImportSource } = await import('../../daemon/import-source.js')
    const data = await readImportSource(source)
    const report = await withWorkspace(io, opts, (ws) => ws.importRecords(data, { dryRun: options.dryRun === true, prune: options.prune === true }))
    print(io, opts, report, () => importText(report))
  })
}

function importText(r: ImportReport): string {
  const lines = [
    `${r.dryRun ? 'would import (dry run, nothing written)' : 'imported'}: ${r.added} added, ${r.changed} changed, ${r.unchanged} unchanged, ${r.deleted} deleted` +
      (r.missing > 0 && r.deleted === 0 ? `; ${r.missing} record(s) here are not in the source and stay (--prune deletes them)` : ''),
  ]
  for (const c of r.collections) {
    lines.push(
      `  ${c.collection} (${c.kind}${c.created ? ', new' : ''}): ${c.added} added, ${c.changed} changed, ${c.unchanged} unchanged, ${c.deleted} deleted` +
        (c.missing > 0 ? `, ${c.missing} not in the source` : ''),
    )
  }
  return lines.join('\n') + '\n'
}
