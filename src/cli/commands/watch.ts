import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { assertCollectionName } from '../../core/names.js'
import { WORKSPACE_EVENTS } from '../../core/workspace-types.js'
import { example, globals, type CliIO } from '../context.js'
import { openWorkspace } from '../../api/open-workspace.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('watch')
      .description('print one JSON line per record change until interrupted; if the peer stops, exits with CONNECTION_CLOSED (exit 6)')
      .argument('[collection]', 'only changes of this collection')
      .option(
        '--events',
        'also print sync events (sync:connected, sync:update, sync:offline, sync:conflict, device:joined, ...); every line then has an "event" field',
      ),
    'kitsync watch alerts',
    'kitsync watch --events',
  ).action(async (collection: string | undefined, options: { events?: boolean }, cmd: Command) => {
    const opts = globals(cmd)
    if (collection !== undefined) assertCollectionName(collection)
    // Without a running peer this process holds the store, so it serves the control socket
    // itself: other commands keep working, and their writes show up here.
    const ws = await openWorkspace({ serve: true, ...(opts.home === undefined ? {} : { home: opts.home }) })
    const stop = new AbortController()
    void io.interrupted().then(() => stop.abort())
    // This device revoked: said once, as a line with its event type (the changes stop coming).
    ws.on('device:revoked-self', (e) => io.out(JSON.stringify({ event: 'device:revoked-self', ...e }) + '\n'))
    // --events: the other events too, as lines with their type; the changes then say `change`.
    const events = options.events === true
    if (events) {
      for (const name of WORKSPACE_EVENTS) {
        if (name === 'change' || name === 'device:revoked-self') continue
        ws.on(name, (e) => {
          if (collection !== undefined && 'collection' in e && e.collection !== collection) return
          io.out(JSON.stringify({ event: name, ...e }) + '\n')
        })
      }
    }
    try {
      for await (const change of ws.changes({ signal: stop.signal, ...(collection === undefined ? {} : { collection }) })) {
        io.out(JSON.stringify(events ? { event: 'change', ...change } : change) + '\n')
      }
      // Not interrupted: the workspace went away under the watch (the peer stopped). A script
      // must not take that for a clean end.
      if (!stop.signal.aborted) {
        throw new KitsyncError(
          'CONNECTION_CLOSED',
          ws.mode === 'peer'
            ? "the peer stopped (its control connection closed): no more changes; start it again with 'kitsync peer start' and rerun watch"
            : 'the workspace closed: no more changes',
        )
      }
    } finally {
      await ws.close()
    }
  })
}
