import { setTimeout as delay } from 'node:timers/promises'
import { isKitsyncError, KitsyncError } from '../core/errors.js'
import type { Workspace } from '../core/workspace-types.js'
import type { CompactionPolicy } from '../core/compaction-policy.js'
import { ensureHome, homePaths, readWorkspaceConfig, resolveHome, type HomePaths } from '../store/home.js'
import type { BinaryLevel } from '../store/level.js'
import type { EarlyHome } from '../daemon/home-early.js'
import { ControlClient } from './control-client.js'
import type { DetachedPeer } from './detached-peer.js'
import { RemoteWorkspace } from './remote-workspace.js'

export interface OpenWorkspaceOptions {
  /** Home folder; default KITSYNC_HOME, else the per-user default. */
  home?: string
  /** Name for a workspace created by this call (a home folder without one gets one). */
  name?: string
  /**
   * `auto` (default): use the running peer through its control socket if there is one,
   * else open the store in this process. `local` / `peer` insist on one of them.
   */
  mode?: 'auto' | 'local' | 'peer'
  /**
   * When the store is opened in this process, also serve the control socket so that the
   * CLI and other apps keep working through this process meanwhile (default true).
   */
  serve?: boolean
  /** Largest record in bytes (default: the workspace setting, else 1 MiB). */
  maxRecordBytes?: number
  compaction?: Partial<CompactionPolicy>
  /** How long to wait for a store held by another process that is starting up (default 3 s). */
  waitMs?: number
  /**
   * Start the peer in the background when none runs, and use it (as `kitsync peer start
   * --detach`, with the flags of the last detached start). `true`: in `auto` and `peer` mode;
   * `false`: never; absent: in `peer` mode when workspace.json says `"autoSpawn": true`.
   */
  spawn?: boolean
  /** Told about a peer this call started (the CLI prints a line). */
  onSpawn?: (peer: DetachedPeer) => void
}

/**
 * Start opening the store of a home folder in this process: the home folder made (as
 * LocalWorkspace.open does first), then LevelDB opening on its own thread and the small files
 * being read (daemon/home-early.ts) while the rest of the store's code loads. That code starts
 * loading only once they are under way: its file reads share libuv's threads with them, and
 * queued first they would hold the store's open back. Every promise is handled; on failure the
 * store is closed again.
 */
async function startLocalOpen(paths: HomePaths, name: string | undefined): Promise<{ db: Promise<BinaryLevel>; early: EarlyHome; code: LocalCode }> {
  const made = ensureHome(paths.home)
  const [levelCode, earlyCode] = await Promise.all([import('../store/level.js'), import('../daemon/home-early.js'), made])
  const db = levelCode.openHomeStore(paths)
  db.catch(() => undefined)
  const early = earlyCode.readHomeEarly(paths, name)
  try {
    return { db, early, code: await import('../daemon/local-workspace.js') }
  } catch (err) {
    await db.then((d) => d.close()).catch(() => undefined)
    throw err
  }
}

type LocalCode = typeof import('../daemon/local-workspace.js')

/** Whether this call starts a peer when none answers (see OpenWorkspaceOptions.spawn). */
async function spawnWanted(options: OpenWorkspaceOptions, mode: 'auto' | 'peer', paths: HomePaths): Promise<boolean> {
  if (options.spawn !== undefined) return options.spawn
  return mode === 'peer' && (await readWorkspaceConfig(paths))?.autoSpawn === true
}

/**
 * Open the workspace of a home folder: through the running peer if there is one, otherwise
 * directly on the store. Never opens the store while another process holds it.
 */
export async function openWorkspace(options: OpenWorkspaceOptions = {}): Promise<Workspace> {
  const home = resolveHome(options.home)
  const paths = homePaths(home)
  const mode = options.mode ?? 'auto'
  if (mode === 'local' && options.spawn === true)
    throw new KitsyncError('INVALID_ARGUMENT', "spawn: true needs mode 'auto' or 'peer' (a peer is used through its socket)")
  const deadline = Date.now() + (options.waitMs ?? 3000)
  for (let attempt = 0; ; attempt++) {
    if (mode !== 'local') {
      const client = await ControlClient.connect(paths.socket)
      if (client !== undefined) return new RemoteWorkspace(client)
      if (attempt === 0 && (await spawnWanted(options, mode, paths))) {
        const { startDetachedPeer } = await import('./detached-peer.js')
        try {
          options.onSpawn?.(await startDetachedPeer({ home }))
        } catch (err) {
          // Another process started one meanwhile: use it (the next round connects).
          if (!isKitsyncError(err, 'PEER_ALREADY_RUNNING')) throw err
        }
        continue
      }
      if (mode === 'peer') throw new KitsyncError('PEER_NOT_RUNNING', `no peer is running for ${home}: start one with 'kitsync peer start'`)
    }
    try {
      // Loaded only when this process opens the store itself: a command that goes through
      // the running peer does not pay for LevelDB, Yjs documents or the identity code. LevelDB
      // opens (on its own thread) while the rest of those modules load.
      const {
        db: store,
        early,
        code: { LocalWorkspace },
      } = await startLocalOpen(paths, options.name)
      const local = await LocalWorkspace.open({
        home,
        store,
        early,
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.maxRecordBytes === undefined ? {} : { maxRecordBytes: options.maxRecordBytes }),
        ...(options.compaction === undefined ? {} : { compaction: options.compaction }),
      })
      if (options.serve ?? true) {
        try {
          const { ControlServer } = await import('../daemon/control-server.js')
          const server = await ControlServer.listen(local, paths.socket)
          local.onClose(() => server.close())
        } catch (err) {
          await local.close()
          throw err
        }
      }
      return local
    } catch (err) {
      // Another process holds the store: most likely a peer that is starting and will
      // answer on its socket in a moment, or a CLI command that will finish soon.
      if (!isKitsyncError(err, 'STORE_LOCKED') || Date.now() > deadline) {
        if (isKitsyncError(err, 'STORE_LOCKED')) {
          throw new KitsyncError('STORE_LOCKED', `the store of ${home} is held by another process that does not answer on ${paths.socket}`, { cause: err })
        }
        throw err
      }
      await delay(Math.min(200, 10 * 2 ** Math.min(attempt, 5)))
    }
  }
}
