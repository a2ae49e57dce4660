import type { Command } from 'commander'
import { parseJson } from '../../core/json.js'
import { example, globals, parseJsonArgument, print, withWorkspace, type CliIO } from '../context.js'
import { warnIfNotSynced } from '../sync-warning.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('append')
      .description(
        "append an entry: a new record keyed by clock (journal), one record per command and session (history), or with --key and --field an entry of a record's list (issue notes)",
      )
      .argument('<collection>', 'collection name')
      .argument('<json>', 'the entry as JSON, or - for stdin')
      .option('--key <key>', 'record key (with --field: the record to append to)')
      .option('--field <name>', 'append-only list field of the record, e.g. notes'),
    `kitsync append journal '{"text":"bought AAPL","tags":["swing"]}'`,
    `kitsync append history '{"command":"git status","session":"laptop-1","cwd":"/src"}'`,
    `kitsync append issues '"reproduced on 0.3"' --key KIT-12 --field notes`,
  ).action(async (collection: string, json: string, options: { key?: string; field?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const value = json === '-' ? parseJson(await io.readStdin(), 'the entry') : parseJsonArgument(json, 'the entry')
    const r = await withWorkspace(io, opts, async (ws) => {
      const appended = await ws.append(collection, value, options)
      await warnIfNotSynced(io, ws, collection)
      return appended
    })
    print(io, opts, { collection, key: r.key }, () => `${r.key}\n`)
  })
}
