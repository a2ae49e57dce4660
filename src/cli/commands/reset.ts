import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { resolveHome } from '../../store/home.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('reset')
      .description(
        'clear the sync state of this device (counters, last seen and last sync, redial backoff; sessions restart with a full exchange); never the data, the keys or the device identity',
      )
      .option('-y, --yes', 'do not ask for confirmation'),
    'kitsync reset',
    'kitsync reset --yes --json',
  ).action(async (options: { yes?: boolean }, cmd: Command) => {
    const opts = globals(cmd)
    if (options.yes !== true) {
      const answer = await io.prompt(`Reset the sync state of ${resolveHome(opts.home, io.env)}? Data, keys and device identity are kept. [y/N] `)
      // No terminal and no answer (stdin closed or empty, as in a script): nobody was asked.
      if (io.stdinIsTTY !== true && answer.trim() === '')
        throw new KitsyncError('INVALID_ARGUMENT', 'reset asks for confirmation and stdin is not a terminal: use --yes; nothing was changed')
      if (!/^y(es)?$/i.test(answer.trim())) throw new KitsyncError('ABORTED', 'reset cancelled; nothing was changed')
    }
    const report = await withWorkspace(io, opts, (ws) => ws.resetSync())
    print(
      io,
      opts,
      report,
      () => `sync state reset: ${report.cleared.join(', ')}${report.sessionsRestarted > 0 ? `; ${report.sessionsRestarted} session(s) restarted` : ''}\n`,
    )
  })
}
