import type { Command } from 'commander'
import { isKitsyncError, KitsyncError } from '../core/errors.js'
import { parseJson, type JsonValue } from '../core/json.js'
import type { Workspace } from '../core/workspace-types.js'
import type { OpenWorkspaceOptions } from '../api/open-workspace.js'
import { openForCli } from './peer-open.js'

export interface CliIO {
  out: (text: string) => void
  err: (text: string) => void
  env: NodeJS.ProcessEnv
  readStdin: () => Promise<string>
  /** Ask a question and resolve with the answer line (empty if stdin ends). */
  prompt: (question: string) => Promise<string>
  /** Resolves when the user interrupts (Ctrl-C) or the process is asked to stop (SIGTERM). */
  interrupted: () => Promise<string>
  /** Whether stdin / stdout is a terminal (absent: not one). */
  stdinIsTTY?: boolean
  stdoutIsTTY?: boolean
  /** Whether stderr is a terminal (progress bars are drawn there only then). */
  stderrIsTTY?: boolean
}

export interface GlobalOptions {
  home?: string
  json?: boolean
  /** --restart-peer: restart a running peer of another kitsync version (peer-open.ts). */
  restartPeer?: boolean
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>()
}

/** Print a result: JSON with --json, else the human form. */
export function print(io: CliIO, opts: GlobalOptions, json: unknown, human: () => string): void {
  io.out(opts.json === true ? JSON.stringify(json) + '\n' : human())
}

/** Open the workspace for one command (through the peer if one runs), run `fn`, close it. */
export async function withWorkspace<T>(io: CliIO, opts: GlobalOptions, fn: (ws: Workspace) => Promise<T>, extra: OpenWorkspaceOptions = {}): Promise<T> {
  // peer-open.ts: auto-spawn of the peer, and the restart of one of another version.
  const ws = await openForCli(io, opts, extra)
  try {
    return await fn(ws)
  } finally {
    await ws.close()
  }
}

/**
 * Parse a JSON argument of the command line. A bare word (`hello`, `dark mode`) is most likely
 * a string the shell took the quotes off: the error says how to quote it.
 */
export function parseJsonArgument(text: string, what: string): JsonValue {
  try {
    return parseJson(text, what)
  } catch (err) {
    if (isKitsyncError(err, 'INVALID_JSON') && /^[A-Za-z_][^"'\\{}[\]]*$/.test(text)) {
      throw new KitsyncError('INVALID_JSON', `${err.message}; a string is JSON in double quotes: use '${JSON.stringify(text)}'`)
    }
    throw err
  }
}

export function example(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`)
}

export interface NetworkFlags {
  listen?: string[]
  bootstrap?: string[]
  mdns?: boolean
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** --listen, --bootstrap (both repeatable) and --no-mdns, for commands that may run a peer. */
export function networkOptions(cmd: Command): Command {
  return cmd
    .option('--listen <multiaddr>', 'address to listen on, repeatable (default /ip4/0.0.0.0/tcp/4771)', collect)
    .option('--bootstrap <multiaddr>', 'peer address to dial, repeatable; remembered in workspace.json', collect)
    .option('--no-mdns', 'do not discover peers on the LAN by mDNS')
}

export function peerOptionsFrom(flags: NetworkFlags): { listen?: string[]; bootstrap?: string[]; mdns: boolean } {
  return {
    ...(flags.listen === undefined ? {} : { listen: flags.listen }),
    ...(flags.bootstrap === undefined ? {} : { bootstrap: flags.bootstrap }),
    mdns: flags.mdns !== false,
  }
}
