import type { Command } from 'commander'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { warnIfNotSynced } from '../sync-warning.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('add')
      .description('add elements to a set field of a record (watchlist symbols, tags); concurrent adds and removes merge')
      .argument('<collection>', 'collection name')
      .argument('<key>', 'record key (created if missing)')
      .argument('<field>', 'set field, e.g. symbols or tags')
      .argument('<elements...>', 'elements to add'),
    'kitsync add watchlists tech symbols NVDA AMD',
  ).action(async (collection: string, key: string, field: string, elements: string[], _o: unknown, cmd: Command) => {
    const opts = globals(cmd)
    await withWorkspace(io, opts, async (ws) => {
      await ws.add(collection, key, field, elements)
      await warnIfNotSynced(io, ws, collection)
    })
    print(io, opts, { collection, key, field, added: elements }, () => '')
  })
  example(
    program
      .command('remove')
      .description('remove elements from a set field (append-only sets such as issue tags refuse with APPEND_ONLY)')
      .argument('<collection>', 'collection name')
      .argument('<key>', 'record key')
      .argument('<field>', 'set field')
      .argument('<elements...>', 'elements to remove'),
    'kitsync remove watchlists tech symbols AMD',
  ).action(async (collection: string, key: string, field: string, elements: string[], _o: unknown, cmd: Command) => {
    const opts = globals(cmd)
    await withWorkspace(io, opts, async (ws) => {
      await ws.remove(collection, key, field, elements)
      await warnIfNotSynced(io, ws, collection)
    })
    print(io, opts, { collection, key, field, removed: elements }, () => '')
  })
}
