/**
 * How a CLI command opens the workspace, with the two things a person meets around the peer:
 * a command that needs the peer starts it in the background when workspace.json says
 * `"autoSpawn": true` (and says so in one line on stderr), and a running peer of another
 * kitsync version (VERSION_MISMATCH, after an upgrade) is restarted with this one when the
 * user asks: `--restart-peer`, or "y" at the question on a terminal. Without either, the error
 * says how to restart it.
 */
import { isKitsyncError, KitsyncError } from '../core/errors.js'
import type { Workspace } from '../core/workspace-types.js'
import type { OpenWorkspaceOptions } from '../api/open-workspace.js'
import { homePaths, resolveHome } from '../store/home.js'

/** What of context.ts's CliIO and GlobalOptions this needs (context.ts imports this file). */
interface CliIO {
  err: (text: string) => void
  env: NodeJS.ProcessEnv
  prompt: (question: string) => Promise<string>
  stdinIsTTY?: boolean
  stdoutIsTTY?: boolean
}
interface GlobalOptions {
  home?: string
  json?: boolean
  restartPeer?: boolean
}

/** How long the restart of an older peer waits for it to stop (as `peer stop`). */
const RESTART_STOP_TIMEOUT_MS = 20_000

export async function openForCli(io: CliIO, opts: GlobalOptions, extra: OpenWorkspaceOptions = {}): Promise<Workspace> {
  // Loaded here, not at start-up: `peer start` never opens a workspace this way.
  const { openWorkspace } = await import('../api/open-workspace.js')
  const options: OpenWorkspaceOptions = {
    serve: false,
    onSpawn: (peer) => {
      if (opts.json !== true) io.err(`kitsync: started the peer in the background (pid ${peer.pid}, log ${peer.log}); kitsync peer stop stops it\n`)
    },
    ...extra,
    ...(opts.home === undefined ? {} : { home: opts.home }),
  }
  try {
    return await openWorkspace(options)
  } catch (err) {
    if (!isKitsyncError(err, 'VERSION_MISMATCH')) throw err
    if (!(await restartWanted(io, opts, err))) {
      throw new KitsyncError(
        'VERSION_MISMATCH',
        `${err.message.replace(/: restart the peer with the same version$/, '')}: restart it with kitsync peer restart, or run this command with --restart-peer`,
        {
          cause: err,
        },
      )
    }
    const { startDetachedPeer, stopPeer } = await import('../api/detached-peer.js')
    const home = resolveHome(opts.home, io.env)
    const stopped = await stopPeer(homePaths(home), RESTART_STOP_TIMEOUT_MS)
    const peer = await startDetachedPeer({ home, env: io.env })
    if (opts.json !== true) io.err(`kitsync: restarted the peer (pid ${stopped.pid} -> ${peer.pid}) with this kitsync version\n`)
    return await openWorkspace({ ...options, spawn: false })
  }
}

async function restartWanted(io: CliIO, opts: GlobalOptions, err: KitsyncError): Promise<boolean> {
  if (opts.restartPeer === true) return true
  if (opts.json === true || io.stdinIsTTY !== true || io.stdoutIsTTY !== true) return false
  const answer = await io.prompt(
    `kitsync: ${err.message.replace(/: restart the peer with the same version$/, '')}.\nRestart the peer with this version now? [y/N] `,
  )
  return /^\s*y(es)?\s*$/i.test(answer)
}
