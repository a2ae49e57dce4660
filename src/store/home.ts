import { createHash, randomBytes } from 'node:crypto'
import { access, constants, mkdir, readFile, stat } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
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
 *   invites.json     pairing tokens this device issued, pending and used (0600)
 *   keys.json        workspace keys by epoch, rotated at every revocation (0600)
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
const MAX_SOCKET_PATH = 100

export function homePaths(home: string): HomePaths {
  let socket = join(home, 'peer.sock')
  if (process.platform === 'win32') {
    socket = `\\\\.\\pipe\\kitsync-${createHash('sha256').update(home).digest('hex').slice(0, 16)}`
  } else if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    socket = join(tmpdir(), `kitsync-${createHash('sha256').update(home).digest('hex').slice(0, 16)}.sock`)
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

/** Create the home folder (0700) if needed and check that this process can use it. */
export async function ensureHome(home: string): Promise<void> {
  try {
    await mkdir(home, { recursive: true, mode: 0o700 })
    const st = await stat(home)
    if (!st.isDirectory()) throw new Error('not a directory')
    await access(home, constants.R_OK | constants.W_OK | constants.X_OK)
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'EEXIST' || (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'not a directory' : (err as Error).message
    throw new KitsyncError('HOME_UNREADABLE', `cannot use home folder ${home}: ${reason}`, { cause: err })
  }
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
  /** Most trusted devices a join may bring the workspace to (default 5). */
  maxDevices?: number
  /** Selective sync: names or patterns of the collections this device syncs (absent: all). */
  items?: string[]
  /** Names or patterns of collections never sent to nor accepted from any device. */
  localOnly?: string[]
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
