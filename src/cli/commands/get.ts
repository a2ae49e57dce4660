import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('get')
      .description('print one record, or every record of a collection as a JSON object')
      .argument('<collection>', 'collection name')
      .argument('[key]', 'record key; omit it for the whole collection'),
    'kitsync get watchlists tech',
    'kitsync get watchlists --json',
  ).action(async (collection: string, key: string | undefined, _options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const value = await withWorkspace(io, opts, (ws) => (key === undefined ? ws.getAll(collection) : ws.get(collection, key)))
    if (value === undefined) throw new KitsyncError('NOT_FOUND', `no record ${JSON.stringify(key)} in ${collection}`, { details: { collection } })
    print(io, opts, value, () => JSON.stringify(value, null, 2) + '\n')
  })
}
