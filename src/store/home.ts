import { createHash, randomBytes } from 'node:crypto'
import { access, chmod, constants, lstat, mkdir, readFile, stat } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { KitsyncError } from '../core/errors.js'
import { isJsonObject } from '../core/json.js'
import { writeJsonFile } from './json-file.js'
import { writeSecretFile } from './secret-file.js'

/**
 * The home folder holds everything of one device:
 *   identity.key     Ed25519 device key (0600); identity.key.id caches its device id
 *   workspace.json   workspace id, name and settings (0600)
 *   store/           the LevelDB store
 *   store.marker     written once store/ exists: a store/ without CURRENT is then refused, never made new
 *   store.wal        acknowledged updates on their way into LevelDB (emptied when they are in)
 *   peer.sock        control socket of the running peer (0600)
 *   peer.pid         pid of the running peer
 *   peer.log         output of a peer started with --detach (0600)
 *   peer.args.json   the flags of the last peer start --detach, for peer restart (0600)
 *   invites.json     pairing tokens this device issued, pending and used (0600)
 *   keys.json        workspace keys by epoch, rotated at every revocation (0600)
 *   http.token       bearer token of the peer's HTTP API (0600); http.json: its port (store/http-files.ts)
 */
export interface HomePaths {
  home: string
  identity: string
  workspace: string
  store: string
  /** Says that store/ was created (see openHomeStore). */
  storeMarker: string
  /** Large collection snapshots, as files LevelDB refers to (see SnapshotFiles). */
  snapshots: string
  socket: string
  pid: string
  /** Pending and used pairing tokens (secrets: 0600). */
  invites: string
  /** Write-ahead file: acknowledged updates not yet in LevelDB. */
  wal: string
  /** Workspace keys by epoch (secret: 0600). */
  keys: string
}

export function defaultHome(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  if (platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'kitsync')
  if (platform === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'kitsync')
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'kitsync')
}

/** `--home`, else KITSYNC_HOME, else the per-user default. */
export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.KITSYNC_HOME ?? defaultHome(env))
}

// Unix socket paths are limited to 107 bytes; a deep home folder gets a socket in the
// temporary folder instead, named by a hash of the home path so every process agrees on it.
// Not in the temporary folder itself: any local user can compute that name and listen there
// first (issue 19). In a folder of the user's own, `kitsync-<uid>`, made 0700 by the peer and
// checked by every client and server (checkSocketFolder).
const MAX_SOCKET_PATH = 100

export function homePaths(home: string): HomePaths {
  let socket = join(home, 'peer.sock')
  if (process.platform === 'win32') {
    socket = `\\\\.\\pipe\\kitsync-${createHash('sha256').update(home).digest('hex').slice(0, 16)}`
  } else if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    socket = join(tmpdir(), `kitsync-${process.getuid?.() ?? 'user'}`, `${createHash('sha256').update(home).digest('hex').slice(0, 16)}.sock`)
  }
  return {
    home,
    identity: join(home, 'identity.key'),
    workspace: join(home, 'workspace.json'),
    store: join(home, 'store'),
    storeMarker: join(home, 'store.marker'),
    snapshots: join(home, 'snapshots'),
    socket,
    pid: join(home, 'peer.pid'),
    invites: join(home, 'invites.json'),
    wal: join(home, 'store.wal'),
    keys: join(home, 'keys.json'),
  }
}

/**
 * Create the home folder (0700) if needed and check that this process can use it. A home
 * folder of this user that others may enter (a folder made 0755 before kitsync used it) is
 * made 0700; one of another user is refused, since it could not be kept private.
 */
export async function ensureHome(home: string): Promise<void> {
  try {
    await mkdir(home, { recursive: true, mode: 0o700 })
    const st = await stat(home)
    if (!st.isDirectory()) throw new Error('not a directory')
    await makePrivate(home, st)
    await access(home, constants.R_OK | constants.W_OK | constants.X_OK)
  } catch (err) {
    if (err instanceof KitsyncError) throw err
    const reason =
      (err as NodeJS.ErrnoException).code === 'EEXIST' || (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'not a directory' : (err as Error).message
    throw new KitsyncError('HOME_UNREADABLE', `cannot use home folder ${home}: ${reason}`, { cause: err })
  }
}

async function makePrivate(home: string, st: { uid: number; mode: number }): Promise<void> {
  const uid = process.getuid?.()
  if (uid === undefined) return // Windows: the folder's ACL decides
  if (st.uid !== uid) {
    throw new KitsyncError(
      'PERMISSION_DENIED',
      `home folder ${home} belongs to uid ${st.uid}, not to this user (uid ${uid}); kitsync keeps its home private to one user: use a folder of your own (--home)`,
    )
  }
  if ((st.mode & 0o077) === 0) return
  try {
    await chmod(home, 0o700)
  } catch (err) {
    throw new KitsyncError('PERMISSION_DENIED', `cannot make home folder ${home} private (chmod 0700): ${(err as Error).message}`, { cause: err })
  }
}

function notOurs(what: string, path: string, owner: number, uid: number): KitsyncError {
  return new KitsyncError(
    'PERMISSION_DENIED',
    `${what} ${path} belongs to uid ${owner}, not to this user (uid ${uid}): another user may be impersonating the peer; not using it (remove it, or use a shorter --home)`,
  )
}

/**
 * Check the folder of a control socket before anything connects to or listens on a socket in
 * it: it must be this user's, and private (no group or other bits), so no one else can place
 * or swap a socket there. A symlink to it must be this user's too. With `create`, a missing
 * folder is made (0700) first: the private socket folder of a deep home.
 */
export async function checkSocketFolder(socket: string, options: { create?: boolean } = {}): Promise<void> {
  const uid = process.getuid?.()
  if (uid === undefined) return // Windows: named pipes
  const dir = dirname(socket)
  if (options.create === true) {
    await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw new KitsyncError('HOME_UNREADABLE', `cannot create the control socket folder ${dir}: ${err.message}`, { cause: err })
    })
  }
  const link = await lstat(dir)
  if (link.uid !== uid) throw notOurs('the control socket folder', dir, link.uid, uid)
  const st = await stat(dir)
  if (!st.isDirectory()) throw new KitsyncError('PERMISSION_DENIED', `the control socket folder ${dir} is not a folder`)
  if (st.uid !== uid) throw notOurs('the control socket folder', dir, st.uid, uid)
  if ((st.mode & 0o077) !== 0) {
    throw new KitsyncError(
      'PERMISSION_DENIED',
      `the control socket folder ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); not using it (chmod 700 it, or remove it)`,
    )
  }
}

/**
 * Whether a control socket exists at `socket` that this user may trust: false when there is
 * none; PERMISSION_DENIED when it or its folder belongs to another user (checked before any
 * byte is sent to it, or before a server removes it as stale).
 */
export async function checkControlSocket(socket: string, options: { create?: boolean } = {}): Promise<boolean> {
  const uid = process.getuid?.()
  if (uid === undefined) return true // Windows: named pipes
  let st
  try {
    st = await lstat(socket)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOENT' && code !== 'ENOTDIR')
      throw new KitsyncError('PERMISSION_DENIED', `cannot check the control socket ${socket}: ${(err as Error).message}`, { cause: err })
    st = undefined
  }
  if (st === undefined && options.create !== true) return false
  await checkSocketFolder(socket, options)
  if (st === undefined) return false
  if (st.uid !== uid) throw notOurs('the control socket', socket, st.uid, uid)
  return true
}

/** A home folder that does not exist yet is fine (nothing initialised); any other failure is not. */
export async function homeExists(home: string): Promise<boolean> {
  try {
    const st = await stat(home)
    if (!st.isDirectory()) throw new KitsyncError('HOME_UNREADABLE', `cannot use home folder ${home}: not a directory`)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    if (err instanceof KitsyncError) throw err
    throw new KitsyncError('HOME_UNREADABLE', `cannot use home folder ${home}: ${(err as Error).message}`, { cause: err })
  }
}

export interface WorkspaceConfig {
  /** Random id of the workspace, shared by all its devices. */
  id: string
  name: string
  createdAt: number
  /** Largest record in bytes of JSON (default 1 MiB). */
  maxRecordBytes?: number
  /** Multiaddrs of peers to dial at start, remembered from `peer start --bootstrap`. */
  bootstrap?: string[]
  /** Multiaddrs the peer listens on when started without --listen, remembered from `join --listen`. */
  listen?: string[]
  /** Most trusted devices a join may bring the workspace to (default 5). */
  maxDevices?: number
  /** Selective sync: names or patterns of the collections this device syncs (absent: all). */
  items?: string[]
  /** Names or patterns of collections never sent to nor accepted from any device. */
  localOnly?: string[]
  /** A CLI command that needs the peer starts it in the background when none runs (`kitsync peer auto-spawn on`). */
  autoSpawn?: boolean
  /** The peer's HTTP API: its port (default 4772), or `enabled: false` (docs/HTTP-API.md). */
  http?: HttpSetting
}

export interface HttpSetting {
  port?: number
  enabled?: boolean
}

export async function readWorkspaceConfig(paths: HomePaths): Promise<WorkspaceConfig | undefined> {
  let text: string
  try {
    text = await readFile(paths.workspace, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new KitsyncError('HOME_UNREADABLE', `cannot read ${paths.workspace}: ${(err as Error).message}`, { cause: err })
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new KitsyncError('DATA_CORRUPTION', `${paths.workspace} is not valid JSON; it was left as it is`, { cause: err })
  }
  if (!isJsonObject(value) || typeof value.id !== 'string' || typeof value.name !== 'string') {
    throw new KitsyncError('DATA_CORRUPTION', `${paths.workspace} lacks a workspace id or name; it was left as it is`)
  }
  return value as unknown as WorkspaceConfig
}

/** Create the workspace if the home folder has none; idempotent. */
export async function initWorkspace(paths: HomePaths, name?: string): Promise<{ config: WorkspaceConfig; created: boolean }> {
  const existing = await readWorkspaceConfig(paths)
  if (existing !== undefined) return { config: existing, created: false }
  const config: WorkspaceConfig = { id: randomBytes(16).toString('hex'), name: name ?? 'workspace', createdAt: Date.now() }
  const written = await writeSecretFile(paths.workspace, new TextEncoder().encode(JSON.stringify(config, null, 2) + '\n'))
  const winner = JSON.parse(new TextDecoder().decode(written)) as WorkspaceConfig
  return { config: winner, created: winner.id === config.id }
}

/** Replace workspace.json atomically. */
export async function writeWorkspaceConfig(paths: HomePaths, config: WorkspaceConfig): Promise<void> {
  await writeJsonFile(paths.workspace, config)
}

/**
 * Add peer addresses to the remembered bootstrap list (written only if something is new).
 * Returns the workspace settings with the whole list.
 */
export async function rememberBootstrap(paths: HomePaths, addresses: string[]): Promise<WorkspaceConfig | undefined> {
  const config = await readWorkspaceConfig(paths)
  if (config === undefined) return undefined
  const known = config.bootstrap ?? []
  const bootstrap = [...new Set([...known, ...addresses])]
  if (bootstrap.length === known.length) return config
  const next = { ...config, bootstrap }
  await writeWorkspaceConfig(paths, next)
  return next
}
