import { readFile, rm, writeFile } from 'node:fs/promises'
import { isKitsyncError, KitsyncError } from '../core/errors.js'
import { homePaths, type HomePaths } from '../store/home.js'
import { ControlServer, socketAnswers } from './control-server.js'
import { LocalWorkspace } from './local-workspace.js'

export interface PeerOptions {
  home: string
  name?: string
}

/**
 * The peer process: owns the store of one home folder and serves the control socket.
 * (Networking joins here in the mesh issue.)
 */
export class Peer {
  private stopping: Promise<void> | undefined

  private constructor(
    readonly workspace: LocalWorkspace,
    readonly control: ControlServer,
    readonly paths: HomePaths,
    readonly startedAt: number,
  ) {}

  static async start(options: PeerOptions): Promise<Peer> {
    const paths = homePaths(options.home)
    let workspace: LocalWorkspace
    try {
      workspace = await LocalWorkspace.open({ home: paths.home, ...(options.name === undefined ? {} : { name: options.name }) })
    } catch (err) {
      if (isKitsyncError(err, 'STORE_LOCKED')) {
        const pid = await readPid(paths.pid)
        const serving = await socketAnswers(paths.socket)
        throw new KitsyncError(
          'PEER_ALREADY_RUNNING',
          serving
            ? `a peer is already running for ${paths.home}${pid === undefined ? '' : ` (pid ${pid})`}`
            : `the store of ${paths.home} is held by another kitsync process`,
          { cause: err, details: pid === undefined ? {} : { pid } },
        )
      }
      throw err
    }
    let control: ControlServer
    try {
      control = await ControlServer.listen(workspace, paths.socket)
    } catch (err) {
      await workspace.close()
      throw err
    }
    const startedAt = Date.now()
    await writeFile(paths.pid, `${process.pid}\n`, { mode: 0o600 })
    workspace.peerState = { running: true, pid: process.pid, startedAt, socket: paths.socket }
    return new Peer(workspace, control, paths, startedAt)
  }

  /** Stop serving, write out everything pending, release the store. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.control.close()
      await this.workspace.close()
      await rm(this.paths.pid, { force: true })
    })()
    return this.stopping
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = parseInt(await readFile(file, 'utf8'), 10)
    return Number.isSafeInteger(pid) ? pid : undefined
  } catch {
    return undefined
  }
}
