import { randomBytes } from 'node:crypto'
import { link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { FOLDER_STATE_DIR, assertFolderPath } from '../core/folder-paths.js'
import { KitsyncError } from '../core/errors.js'
import { debugLog } from '../core/debug-log.js'

const log = debugLog('folder:trash')

/**
 * The folder's trash, `.kitsync/trash/`: a file that a peer's change deletes or overwrites on
 * this device is kept here for the retention period, so a mistaken delete on one device can be
 * undone on any device that had the file. One directory per entry, `ID/content` and
 * `ID/meta.json`; the ID starts with the time, so a listing sorts by age. Private (0700).
 */
export interface TrashEntry {
  id: string
  /** The file's path in the folder. */
  path: string
  /** ms since the epoch. */
  trashedAt: number
  reason: 'deleted' | 'overwritten'
  size: number
}

export const DEFAULT_TRASH_RETENTION_MS = 30 * 24 * 3600 * 1000

export interface TrashOptions {
  retentionMs?: number
  now?: () => number
}

export class FolderTrash {
  readonly dir: string
  private readonly retentionMs: number
  private readonly now: () => number

  constructor(
    readonly root: string,
    options: TrashOptions = {},
  ) {
    this.dir = join(root, FOLDER_STATE_DIR, 'trash')
    this.retentionMs = options.retentionMs ?? DEFAULT_TRASH_RETENTION_MS
    this.now = options.now ?? Date.now
  }

  /**
   * Keep the file at `abs` (the folder's `path`). 'overwritten' hard-links it (the caller then
   * renames the new content over it, and the old inode lives on here); 'deleted' moves it here.
   * Both are one system call on the same file system: nothing is copied, nothing half-kept.
   */
  async keep(path: string, abs: string, reason: TrashEntry['reason']): Promise<TrashEntry> {
    assertFolderPath(path)
    const trashedAt = this.now()
    const id = `${trashedAt.toString(36).padStart(9, '0')}-${randomBytes(6).toString('hex')}`
    const entryDir = join(this.dir, id)
    await mkdir(entryDir, { recursive: true, mode: 0o700 })
    const { size } = await stat(abs)
    const entry: TrashEntry = { id, path, trashedAt, reason, size }
    await writeFile(join(entryDir, 'meta.json'), JSON.stringify(entry), { mode: 0o600 })
    if (reason === 'overwritten') await link(abs, join(entryDir, 'content'))
    else await rename(abs, join(entryDir, 'content'))
    return entry
  }

  /** Entries, oldest first. */
  async list(): Promise<TrashEntry[]> {
    let ids: string[]
    try {
      ids = (await readdir(this.dir)).sort()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const out: TrashEntry[] = []
    for (const id of ids) {
      const entry = await this.read(id)
      if (entry !== undefined) out.push(entry)
    }
    return out
  }

  /**
   * Put an entry's file back at its path (or `to`). Never over an existing file: the link fails
   * with EEXIST and nothing changes (NOT_FOUND for an unknown id, INVALID_ARGUMENT for a taken path).
   */
  async restore(id: string, to?: string): Promise<TrashEntry> {
    const entry = await this.read(id)
    if (entry === undefined) throw new KitsyncError('NOT_FOUND', `no trash entry ${JSON.stringify(id)}`)
    const path = to ?? entry.path
    const parts = assertFolderPath(path)
    const target = join(this.root, ...parts)
    await mkdir(dirname(target), { recursive: true })
    try {
      await link(join(this.dir, id, 'content'), target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new KitsyncError('INVALID_ARGUMENT', `${path} exists: restore it to another path`)
      throw err
    }
    await rm(join(this.dir, id), { recursive: true, force: true })
    return { ...entry, path }
  }

  /** Remove entries older than the retention period; returns how many went. */
  async purge(): Promise<number> {
    const cutoff = this.now() - this.retentionMs
    let removed = 0
    for (const e of await this.list()) {
      if (e.trashedAt >= cutoff) continue
      await rm(join(this.dir, e.id), { recursive: true, force: true })
      removed++
    }
    return removed
  }

  private async read(id: string): Promise<TrashEntry | undefined> {
    if (!/^[0-9a-z]{9}-[0-9a-f]{12}$/.test(id)) return undefined
    try {
      const meta = JSON.parse(await readFile(join(this.dir, id, 'meta.json'), 'utf8')) as TrashEntry
      await stat(join(this.dir, id, 'content'))
      return meta
    } catch (err) {
      // An entry cut short by a crash (meta without content): not listed, removed by purge's next pass over it.
      log(`trash entry ${id} unreadable`, err)
      return undefined
    }
  }
}
