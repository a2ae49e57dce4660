import type { Command } from 'commander'
import { parseJson } from '../../core/json.js'
import { example, globals, parseJsonArgument, print, withWorkspace, type CliIO } from '../context.js'
import { warnIfNotSynced } from '../sync-warning.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('set')
      .description('write a record (a JSON object or any JSON value); JSON "-" reads it from stdin')
      .argument('<collection>', 'collection name, created on first write')
      .argument('<key>', 'record key')
      .argument('<json>', 'the record as JSON, or - for stdin')
      .option('--field <name>', 'set only this field of the record, keeping the others'),
    `kitsync set watchlists tech '{"symbols":["AAPL","MSFT"]}'`,
    `kitsync set settings ui --field theme '"dark"'`,
  ).action(async (collection: string, key: string, json: string, options: { field?: string }, cmd: Command) => {
    const opts = globals(cmd)
    // Parse before opening anything: bad input never reaches the store.
    const value = json === '-' ? parseJson(await io.readStdin(), 'the record') : parseJsonArgument(json, 'the record')
    await withWorkspace(io, opts, async (ws) => {
      await ws.set(collection, key, value, options.field === undefined ? {} : { field: options.field })
      await warnIfNotSynced(io, ws, collection)
    })
    print(io, opts, { collection, key, written: true }, () => '')
  })
}
