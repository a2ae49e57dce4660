import { rename, writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { example, globals, withWorkspace, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('export')
      .description('write the whole workspace as one JSON document (to stdout, or to a file)')
      .option('--out <file>', 'write to this file instead of stdout (replaced atomically)'),
    'kitsync export --out backup.json',
  ).action(async (options: { out?: string }, cmd: Command) => {
    const opts = globals(cmd)
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
