import { Command, CommanderError } from 'commander'
import { exitCodeFor, KitsyncError, toKitsyncError } from '../core/errors.js'
import { KITSYNC_VERSION } from '../core/version.js'
import type { CliIO } from './context.js'
import { register as registerDel } from './commands/del.js'
import { register as registerDevices } from './commands/devices.js'
import { register as registerLog } from './commands/log.js'
import { register as registerRevoke } from './commands/revoke.js'
import { register as registerExport } from './commands/export.js'
import { register as registerGet } from './commands/get.js'
import { register as registerInit } from './commands/init.js'
import { register as registerList } from './commands/list.js'
import { register as registerJoin } from './commands/join.js'
import { register as registerPair } from './commands/pair.js'
import { register as registerPeer } from './commands/peer.js'
import { register as registerPeers } from './commands/peers.js'
import { register as registerSet } from './commands/set.js'
import { register as registerStatus } from './commands/status.js'
import { register as registerWatch } from './commands/watch.js'
import { register as registerSetOps } from './commands/set-ops.js'
import { register as registerAppend } from './commands/append.js'
import { register as registerCollection } from './commands/collection.js'
import { register as registerConflicts } from './commands/conflicts.js'
import { register as registerItems } from './commands/items.js'
import { register as registerFetch } from './commands/fetch.js'
import { register as registerSync } from './commands/sync.js'
import { register as registerStats } from './commands/stats.js'
import { register as registerReset } from './commands/reset.js'

export function buildProgram(io: CliIO): Command {
  const program = new Command('kitsync')
    .description('peer-to-peer sync of structured app data between your devices')
    .version(KITSYNC_VERSION, '-V, --version')
    .option('--home <dir>', 'home folder of this device (default: $KITSYNC_HOME, else the per-user default)')
    .option('--json', 'machine-readable output (one JSON document or JSON lines)')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: () => undefined, // runCli prints one line with a code instead
    })
  for (const register of [registerInit, registerSet, registerGet, registerDel, registerSetOps, registerAppend, registerCollection, registerConflicts, registerList, registerWatch, registerExport, registerStatus, registerPeer, registerPair, registerJoin, registerPeers, registerDevices, registerRevoke, registerLog, registerItems, registerFetch, registerSync, registerStats, registerReset]) {
    register(program, io)
  }
  program.addHelpText('after', '\nExample:\n  $ kitsync peer start            # run this device\'s peer\n  $ kitsync set notes today \'{"text":"hi"}\'\n')
  return program
}

/** Run the CLI; returns the exit status. Never calls process.exit (bin/ does). */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const program = buildProgram(io)
  let json = argv.includes('--json')
  try {
    await program.parseAsync(argv, { from: 'user' })
    json = program.opts<{ json?: boolean }>().json === true
    return 0
  } catch (err) {
    const error = fromCommander(err)
    if (error === 'ok') return 0
    if (json) io.err(JSON.stringify({ error: error.toJSON() }) + '\n')
    else io.err(`kitsync: ${error.code}: ${error.message}\n`)
    return exitCodeFor(error)
  }
}

function fromCommander(err: unknown): KitsyncError | 'ok' {
  if (!(err instanceof CommanderError)) return toKitsyncError(err)
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 'ok'
  const message = err.message.replace(/^error: /, '')
  if (err.code === 'commander.unknownCommand') return new KitsyncError('UNKNOWN_COMMAND', `${message} (see kitsync --help)`)
  // Bare `kitsync` or `kitsync peer` without a subcommand shows help on stderr: a usage error.
  if (err.code === 'commander.executeSubCommandAsync' || message === '(outputHelp)') return new KitsyncError('INVALID_ARGUMENT', 'missing command (see kitsync --help)')
  return new KitsyncError('INVALID_ARGUMENT', message)
}
