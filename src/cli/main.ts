import { Command, CommanderError } from 'commander'
import { exitCodeFor, KitsyncError, toKitsyncError } from '../core/errors.js'
import { KITSYNC_VERSION } from '../core/version.js'
import type { CliIO } from './context.js'

type Register = (program: Command, io: CliIO) => void

/**
 * Every command module, in the order of `kitsync --help`, with the top-level commands it
 * registers. A run loads only the module of its command (a peer never loads the other 25, nor
 * what they import); help, a bare `kitsync` and an unknown command load them all.
 */
export const COMMAND_MODULES: readonly { commands: readonly string[]; load: () => Promise<{ register: Register }> }[] = [
  { commands: ['init'], load: () => import('./commands/init.js') },
  { commands: ['set'], load: () => import('./commands/set.js') },
  { commands: ['get'], load: () => import('./commands/get.js') },
  { commands: ['del'], load: () => import('./commands/del.js') },
  { commands: ['add', 'remove'], load: () => import('./commands/set-ops.js') },
  { commands: ['append'], load: () => import('./commands/append.js') },
  { commands: ['collection', 'kinds'], load: () => import('./commands/collection.js') },
  { commands: ['conflicts', 'resolve'], load: () => import('./commands/conflicts.js') },
  { commands: ['history', 'restore'], load: () => import('./commands/history.js') },
  { commands: ['list'], load: () => import('./commands/list.js') },
  { commands: ['watch'], load: () => import('./commands/watch.js') },
  { commands: ['export'], load: () => import('./commands/export.js') },
  { commands: ['import'], load: () => import('./commands/import.js') },
  { commands: ['status'], load: () => import('./commands/status.js') },
  { commands: ['peer'], load: () => import('./commands/peer.js') },
  { commands: ['pair'], load: () => import('./commands/pair.js') },
  { commands: ['join'], load: () => import('./commands/join.js') },
  { commands: ['peers'], load: () => import('./commands/peers.js') },
  { commands: ['devices'], load: () => import('./commands/devices.js') },
  { commands: ['revoke'], load: () => import('./commands/revoke.js') },
  { commands: ['log'], load: () => import('./commands/log.js') },
  { commands: ['items'], load: () => import('./commands/items.js') },
  { commands: ['fetch'], load: () => import('./commands/fetch.js') },
  { commands: ['sync'], load: () => import('./commands/sync.js') },
  { commands: ['stats'], load: () => import('./commands/stats.js') },
  { commands: ['reset'], load: () => import('./commands/reset.js') },
  { commands: ['doctor'], load: () => import('./commands/doctor.js') },
  { commands: ['service'], load: () => import('./commands/service.js') },
  { commands: ['dashboard'], load: () => import('./commands/dashboard.js') },
  { commands: ['check'], load: () => import('./commands/check.js') },
  { commands: ['folder'], load: () => import('./commands/folder.js') },
]

/** The command an argument list runs (its first word that is not a global option), if any. */
export function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--home') i++
    else if (arg === '--') return argv[i + 1]
    else if (!arg.startsWith('-')) return arg
  }
  return undefined
}

/** The program with the commands of `argv` (every command if argv is omitted or names none). */
export async function buildProgram(io: CliIO, argv?: readonly string[]): Promise<Command> {
  const name = argv === undefined ? undefined : commandOf(argv)
  const program = new Command('kitsync')
    .description('peer-to-peer sync of structured app data between your devices')
    // Program options are read after the command too: `restore --version STAMP` keeps its own.
    .version(KITSYNC_VERSION, name === 'restore' || (name === 'folder' && argv?.includes('restore') === true) ? '-V' : '-V, --version')
    .option('--home <dir>', 'home folder of this device (default: $KITSYNC_HOME, else the per-user default)')
    .option('--json', 'machine-readable output (one JSON document or JSON lines)')
    .option('--restart-peer', 'if the running peer is another kitsync version (VERSION_MISMATCH), restart it with this one and go on')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: () => undefined, // runCli prints one line with a code instead
    })
  const one = COMMAND_MODULES.filter((m) => name !== undefined && m.commands.includes(name))
  for (const module of one.length > 0 ? one : COMMAND_MODULES) (await module.load()).register(program, io)
  program.addHelpText('after', '\nExample:\n  $ kitsync peer start            # run this device\'s peer\n  $ kitsync set notes today \'{"text":"hi"}\'\n')
  return program
}

/** Run the CLI; returns the exit status. Never calls process.exit (bin/ does). */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const program = await buildProgram(io, argv)
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
  if (err.code === 'commander.executeSubCommandAsync' || message === '(outputHelp)')
    return new KitsyncError('INVALID_ARGUMENT', 'missing command (see kitsync --help)')
  return new KitsyncError('INVALID_ARGUMENT', message)
}
