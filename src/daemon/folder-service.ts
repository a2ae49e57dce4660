import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { isAbsolute, relative, resolve } from 'node:path'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { DEFAULT_MAX_FILE_SIZE } from '../core/folder-selection.js'
import type { FileSyncState, FolderAddOptions, FolderListItem, FolderSelectionChange, FolderStatusView } from '../core/folder-types.js'
import type { JsonValue } from '../core/json.js'
import type { FileHistory, FileRestoreResult } from '../core/folder-versions.js'
import type { HistoryRetention, HistorySetting } from '../core/history-types.js'
import { FolderEngine } from './folder-engine.js'
import { fileHistory, restoreFile } from './folder-history.js'
import { DEFINITION_KEY, definitionOf, FOLDER_COLLECTION_PREFIX, folderCollection, type FolderHost } from './folder-host.js'

const log = debugLog('folder:service')

/** A folder name: what a collection name allows after `_folder.` (it is the collection's name). */
const FOLDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,55}$/

/** Where each folder is placed on this device: `folders.json` in the home (0600), never synced. */
interface Placements {
  folders: Record<string, { path: string; placedAt: number }>
}

export interface FolderServiceOptions {
  /** The placements file (HOME/folders.json). */
  file: string
  /** The home folder: a folder cannot be placed in it, nor it in a folder. */
  home?: string
  settleMs?: number
  /**
   * Run after a folder is placed. The peer runs a sync round: units of a collection created
   * while a session was open were not exchanged on it until then (seen with two CLI peers).
   */
  afterAdd?: () => Promise<void>
}

function assertFolderName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !FOLDER_NAME.test(name))
    throw new KitsyncError(
      'INVALID_NAME',
      `invalid folder name ${JSON.stringify(name)}: use 1-56 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
}

function assertFilePath(path: unknown): asserts path is string {
  if (typeof path !== 'string' || path === '' || path.startsWith('/'))
    throw new KitsyncError('INVALID_ARGUMENT', `a file is named by its path in the folder ('dir/name.txt'), not ${JSON.stringify(path)}`)
}

/**
 * The shared folders of a running peer: their shared definitions (a record in each folder's
 * `_folder.NAME` collection, synced), where each is placed on this device (local, 0600), and one
 * FolderEngine per placed folder.
 */
export class FolderService {
  private readonly engines = new Map<string, FolderEngine>()
  private readonly failed = new Map<string, KitsyncError>()
  /** add/remove one at a time. */
  private lock: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly host: FolderHost,
    private readonly options: FolderServiceOptions,
  ) {}

  /** Start every folder placed here; one that fails is reported by list, the others run. */
  async start(): Promise<void> {
    const placements = await this.placements()
    for (const [name, p] of Object.entries(placements.folders)) {
      try {
        await this.startEngine(name, p.path)
      } catch (err) {
        log(`folder ${name} (${p.path}) did not start`, err)
        this.failed.set(name, toKitsyncError(err))
      }
    }
  }

  async stop(): Promise<void> {
    const engines = [...this.engines.values()]
    this.engines.clear()
    for (const e of engines) await e.stop().catch((err: unknown) => log(`folder ${e.name} did not stop cleanly`, err))
  }

  /** The engine of a placed folder (tests, status). */
  engine(name: string): FolderEngine | undefined {
    return this.engines.get(name)
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn)
    this.lock = run.catch(() => undefined)
    return run
  }

  /** Share a folder, or place a shared one here: what the folder holds is merged with the workspace's files. */
  add(options: FolderAddOptions): Promise<FolderListItem> {
    return this.serial(async () => {
      assertFolderName(options.name)
      if (typeof options.path !== 'string' || options.path === '') throw new KitsyncError('INVALID_ARGUMENT', 'folder add needs a path')
      const root = resolve(options.path)
      const placements = await this.placements()
      if (placements.folders[options.name] !== undefined)
        throw new KitsyncError('INVALID_ARGUMENT', `folder ${options.name} is already placed here at ${placements.folders[options.name]?.path}`)
      for (const [other, p] of Object.entries(placements.folders)) {
        if (inside(root, p.path) || inside(p.path, root)) throw new KitsyncError('INVALID_ARGUMENT', `${root} overlaps folder ${other} (${p.path})`)
      }
      if (this.options.home !== undefined && (inside(root, this.options.home) || inside(this.options.home, root)))
        throw new KitsyncError('INVALID_ARGUMENT', `${root} overlaps the kitsync home ${this.options.home}`)
      const st = await stat(root).catch(() => undefined)
      if (st !== undefined && !st.isDirectory()) throw new KitsyncError('INVALID_ARGUMENT', `${root} is not a directory`)
      if (options.maxFileSize !== undefined && !(Number.isInteger(options.maxFileSize) && options.maxFileSize > 0))
        throw new KitsyncError('INVALID_ARGUMENT', 'maxFileSize must be a positive whole number of bytes')
      await mkdir(root, { recursive: true })
      await this.writeDefinition(options)
      placements.folders[options.name] = { path: root, placedAt: Date.now() }
      await this.savePlacements(placements)
      this.failed.delete(options.name)
      // The workspace's files arrive in the background, as incoming files (status, list): add returns once the folder is captured and watched.
      await this.startEngine(options.name, root, true)
      await this.options.afterAdd?.().catch((err: unknown) => log(`folder ${options.name}: the sync round after placing it failed`, err))
      return this.item(options.name, root)
    })
  }

  /** Stop syncing a folder here; its files stay. */
  remove(name: string): Promise<{ name: string; path: string }> {
    return this.serial(async () => {
      assertFolderName(name)
      const placements = await this.placements()
      const p = placements.folders[name]
      if (p === undefined) throw new KitsyncError('NOT_FOUND', `folder ${name} is not placed on this device`)
      await this.engines.get(name)?.stop()
      this.engines.delete(name)
      this.failed.delete(name)
      delete placements.folders[name]
      await this.savePlacements(placements)
      return { name, path: p.path }
    })
  }

  /** The workspace's folders: placed here or not. */
  async list(): Promise<FolderListItem[]> {
    const placements = await this.placements()
    const names = new Set(Object.keys(placements.folders))
    for (const c of this.host.collectionNames()) if (c.startsWith(FOLDER_COLLECTION_PREFIX)) names.add(c.slice(FOLDER_COLLECTION_PREFIX.length))
    const out: FolderListItem[] = []
    for (const name of [...names].sort()) out.push(await this.item(name, placements.folders[name]?.path))
    return out
  }

  /** Per file of one folder (or each placed one): synced, local changes, incoming, conflict, local only, excluded. */
  async status(name?: string): Promise<FolderStatusView[]> {
    if (name !== undefined) assertFolderName(name)
    const placements = await this.placements()
    const names = name === undefined ? Object.keys(placements.folders).sort() : [name]
    const out: FolderStatusView[] = []
    for (const n of names) {
      const engine = this.engines.get(n)
      if (engine === undefined) {
        const failed = this.failed.get(n)
        if (failed !== undefined) throw failed
        throw new KitsyncError('NOT_FOUND', `folder ${n} is not placed on this device (kitsync folder add PATH --name ${n})`)
      }
      const files = await engine.status()
      const counts: Partial<Record<FileSyncState, number>> = {}
      for (const f of files) counts[f.state] = (counts[f.state] ?? 0) + 1
      out.push({ name: n, path: engine.root, files, counts })
    }
    return out
  }

  /** A file's versions, newest first (a folder not placed here too: its manifest syncs to every device). */
  async history(name: string, path: string): Promise<FileHistory> {
    assertFolderName(name)
    assertFilePath(path)
    if (!this.host.collectionNames().includes(folderCollection(name)) && this.engines.get(name) === undefined)
      throw new KitsyncError('NOT_FOUND', `no folder named ${name}`)
    return fileHistory(this.host, name, path, this.engines.get(name))
  }

  /** Write an old version of a file again, as a local change that syncs (refused with FILE_CHANGED over an edit not captured yet). */
  async restore(name: string, path: string, target: { version?: string; at?: number | string }): Promise<FileRestoreResult> {
    assertFolderName(name)
    assertFilePath(path)
    const engine = this.engines.get(name)
    if (engine === undefined)
      throw this.failed.get(name) ?? new KitsyncError('NOT_FOUND', `folder ${name} is not placed on this device (kitsync folder add PATH --name ${name})`)
    return restoreFile(engine, path, target)
  }

  /** A folder's history retention (`_collections` record `_folder.NAME`, synced): how many versions and days of each file are kept. */
  async setHistory(name: string, setting: HistorySetting | null): Promise<{ name: string; history: HistoryRetention }> {
    assertFolderName(name)
    if (this.host.history === undefined) throw new KitsyncError('INVALID_ARGUMENT', 'file history is not kept by this workspace')
    if (!this.host.collectionNames().includes(folderCollection(name))) throw new KitsyncError('NOT_FOUND', `no folder named ${name}`)
    return { name, history: await this.host.history.setRetention(folderCollection(name), setting) }
  }

  /** Change a folder's globs or size cap: synced, so every device where it is placed rescans under them. */
  async setSelection(name: string, change: FolderSelectionChange): Promise<FolderListItem> {
    assertFolderName(name)
    const collection = folderCollection(name)
    if (!this.host.collectionNames().includes(collection)) throw new KitsyncError('NOT_FOUND', `no folder named ${name}`)
    const fields: Record<string, JsonValue> = {}
    if (change.include !== undefined) fields.include = change.include
    if (change.exclude !== undefined) fields.exclude = change.exclude
    if (change.maxFileSize !== undefined) fields.maxFileSize = change.maxFileSize
    if (Object.keys(fields).length === 0) throw new KitsyncError('INVALID_ARGUMENT', 'give include, exclude or maxFileSize to change')
    await this.host.units.commit(collection, [], [{ key: DEFINITION_KEY, fields }])
    return this.item(name, (await this.placements()).folders[name]?.path)
  }

  private async item(name: string, path: string | undefined): Promise<FolderListItem> {
    const records = await this.host.records(folderCollection(name))
    const def = definitionOf(records[DEFINITION_KEY]) ?? { include: [], exclude: [], maxFileSize: DEFAULT_MAX_FILE_SIZE }
    const engine = this.engines.get(name)
    const totals = engine?.totals() ?? { files: 0, bytes: 0 }
    const failed = this.failed.get(name)
    const base = { name, include: def.include, exclude: def.exclude, maxFileSize: def.maxFileSize, ...totals }
    if (path === undefined) return { ...base, state: 'not here' }
    if (failed !== undefined) return { ...base, path, state: 'error', error: { code: failed.code, message: failed.message } }
    return { ...base, path, state: 'watching' }
  }

  /** The first add writes the definition; a later add that gives globs or a cap changes them (on every device). */
  private async writeDefinition(options: FolderAddOptions): Promise<void> {
    const collection = folderCollection(options.name)
    const current = definitionOf((await this.host.records(collection))[DEFINITION_KEY])
    const fields: Record<string, JsonValue> = {}
    if (current === undefined) {
      Object.assign(fields, {
        include: options.include ?? [],
        exclude: options.exclude ?? [],
        maxFileSize: options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
        createdBy: this.host.deviceId,
        createdAt: Date.now(),
      })
    } else {
      if (options.include !== undefined && options.include.length > 0) fields.include = options.include
      if (options.exclude !== undefined && options.exclude.length > 0) fields.exclude = options.exclude
      if (options.maxFileSize !== undefined) fields.maxFileSize = options.maxFileSize
    }
    if (Object.keys(fields).length > 0) await this.host.units.commit(collection, [], [{ key: DEFINITION_KEY, fields }])
  }

  private async startEngine(name: string, root: string, background = false): Promise<void> {
    const records = await this.host.records(folderCollection(name))
    const definition = definitionOf(records[DEFINITION_KEY])
    if (definition === undefined) throw new KitsyncError('NOT_FOUND', `folder ${name} has no definition in the workspace yet (not synced here?)`)
    const engine = new FolderEngine(this.host, { name, root, definition, ...(this.options.settleMs === undefined ? {} : { settleMs: this.options.settleMs }) })
    await engine.start({ background })
    this.engines.set(name, engine)
  }

  private async placements(): Promise<Placements> {
    try {
      const raw = JSON.parse(await readFile(this.options.file, 'utf8')) as Partial<Placements>
      return { folders: typeof raw.folders === 'object' && raw.folders !== null ? raw.folders : {} }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { folders: {} }
      throw new KitsyncError('HOME_UNREADABLE', `${this.options.file} cannot be read: ${(err as Error).message}`, { cause: err })
    }
  }

  private async savePlacements(p: Placements): Promise<void> {
    const temp = `${this.options.file}.tmp`
    await writeFile(temp, JSON.stringify(p, null, 2) + '\n', { mode: 0o600 })
    await rename(temp, this.options.file)
  }
}

/** Whether `a` is `b` or inside it. */
function inside(a: string, b: string): boolean {
  const r = relative(b, a)
  return r === '' || (!r.startsWith('..') && !isAbsolute(r))
}
