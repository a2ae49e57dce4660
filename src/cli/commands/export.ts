import { rename, writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import type { GitExportReport } from '../../core/transfer-types.js'
import { example, globals, withWorkspace, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('export')
      .description('write the whole workspace as one JSON document (to stdout, or to a file), or with --git to a git repository, a JSON file per record')
      .option('--out <file>', 'write to this file instead of stdout (replaced atomically)')
      .option('--git <dir>', 'write each collection as a folder of JSON files in this git repository (made if new) and commit what changed')
      .option('--message <text>', 'with --git: the commit subject (default: a summary of the changes)'),
    'kitsync export --out backup.json',
    'kitsync export --git ~/kitsync-export',
  ).action(async (options: { out?: string; git?: string; message?: string }, cmd: Command) => {
    const opts = globals(cmd)
    if (options.git !== undefined) {
      if (options.out !== undefined) throw new KitsyncError('INVALID_ARGUMENT', 'give --out or --git, not both')
      const dir = options.git
      const report = await withWorkspace(io, opts, (ws) => ws.exportGit(dir, options.message === undefined ? {} : { message: options.message }))
      io.out(opts.json === true ? JSON.stringify(report) + '\n' : gitText(report))
      return
    }
    const data = await withWorkspace(io, opts, (ws) => ws.export())
    const text = JSON.stringify(data, null, opts.json === true ? undefined : 2) + '\n'
    if (options.out === undefined) {
      io.out(text)
    } else {
      const tmp = `${options.out}.${process.pid}.tmp`
      await writeFile(tmp, text, { mode: 0o600 })
      await rename(tmp, options.out)
      if (opts.json === true) io.out(JSON.stringify({ out: options.out, collections: Object.keys(data.collections).length }) + '\n')
    }
    if (data.unreadable.length > 0) {
      const first = data.unreadable[0]
      throw new KitsyncError(
        'DATA_CORRUPTION',
        `exported all but ${data.unreadable.length} collection(s) that cannot be read: ${data.unreadable.map((u) => u.collection).join(', ')} (${first?.message ?? ''})`,
        { details: { collection: first?.collection } },
      )
    }
  })
}

function gitText(r: GitExportReport): string {
  const where = `${r.collections} collection(s), ${r.records} record(s) in ${r.dir}${r.initialised ? ' (new repository)' : ''}`
  if (r.commit === undefined) return `nothing changed since the last export: no commit (${where})\n`
  const count = (s: string): number => r.changes.filter((c) => c.status === s).length
  return `committed ${r.commit.slice(0, 12)}: ${count('added')} added, ${count('changed')} changed, ${count('deleted')} deleted file(s) (${where})\n`
}
