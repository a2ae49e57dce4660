import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { warnIfNotSynced } from '../sync-warning.js'

export function register(program: Command, io: CliIO): void {
  example(
    program.command('del').description('delete a record').argument('<collection>', 'collection name').argument('<key>', 'record key'),
    'kitsync del alerts btc-above-100k',
  ).action(async (collection: string, key: string, _options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const deleted = await withWorkspace(io, opts, async (ws) => {
      const done = await ws.delete(collection, key)
      await warnIfNotSynced(io, ws, collection)
      return done
    })
    if (!deleted) throw new KitsyncError('NOT_FOUND', `no record ${JSON.stringify(key)} in ${collection}`, { details: { collection } })
    print(io, opts, { collection, key, deleted: true }, () => '')
  })
}
