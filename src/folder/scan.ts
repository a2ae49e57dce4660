import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { checkFolderPath } from '../core/folder-paths.js'
import { FolderSelection, IGNORE_FILE, type ExcludeReason, type FolderSelectionOptions } from '../core/folder-selection.js'
import { readDiskEntry, type FileState } from './file-state.js'

/**
 * A full rescan of a shared folder: every file the selection takes, with its size, times, mode,
 * hash and kind; every directory (empty ones sync too); and what was skipped, with why. Run at
 * start, after a watcher error (an overflow loses events) and when `.kitsyncignore` changes.
 * Hashes of files whose size, times and inode did not change since `previous` are reused.
 * `under` scans one directory (relative) and what it holds instead of the whole folder.
 */

export type SkipReason = ExcludeReason | 'symlink' | 'special' | 'unsafe-name'

export interface Skipped {
  path: string
  reason: SkipReason
  /** A directory skipped with everything under it. */
  dir?: boolean
}

export interface ScanResult {
  files: Map<string, FileState>
  dirs: Set<string>
  skipped: Skipped[]
}

/** Files read and hashed at once: enough to keep the disk busy, few enough not to hold many MiB. */
const READ_CONCURRENCY = 16

/** The folder's selection: its options plus the `.kitsyncignore` at its root, if any. */
export async function loadSelection(root: string, options: Omit<FolderSelectionOptions, 'ignoreFile'> = {}): Promise<FolderSelection> {
  let ignoreFile: string | undefined
  try {
    ignoreFile = await readFile(join(root, IGNORE_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  return new FolderSelection(ignoreFile === undefined ? options : { ...options, ignoreFile })
}

export async function scanFolder(root: string, selection: FolderSelection, previous?: ReadonlyMap<string, FileState>, under = ''): Promise<ScanResult> {
  const result: ScanResult = { files: new Map(), dirs: new Set(), skipped: [] }
  const candidates: string[] = []
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(rel === '' ? root : join(root, rel), { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      // A directory removed while we walk is simply not there any more.
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return []
      throw err
    })
    for (const entry of entries) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`
      if (entry.isDirectory()) {
        const d = selection.directory(path)
        if (!d.included) {
          if (d.reason !== 'internal') result.skipped.push({ path, reason: d.reason, dir: true })
          continue
        }
        if (!checkFolderPath(path).ok) {
          result.skipped.push({ path, reason: 'unsafe-name', dir: true })
          continue
        }
        result.dirs.add(path)
        await walk(path)
        continue
      }
      const byPath = selection.path(path)
      if (!byPath.included) {
        if (byPath.reason !== 'internal') result.skipped.push({ path, reason: byPath.reason })
        continue
      }
      if (entry.isSymbolicLink()) result.skipped.push({ path, reason: 'symlink' })
      else if (!entry.isFile()) result.skipped.push({ path, reason: 'special' })
      else if (!checkFolderPath(path).ok) result.skipped.push({ path, reason: 'unsafe-name' })
      else candidates.push(path)
    }
  }
  await walk(under)
  let next = 0
  const worker = async (): Promise<void> => {
    const scratch = { buf: Buffer.allocUnsafe(64 * 1024) }
    while (next < candidates.length) {
      const path = candidates[next++] as string
      const e = await readDiskEntry(join(root, path), selection.maxFileSize, previous?.get(path), scratch)
      if (e.kind === 'symlink') result.skipped.push({ path, reason: 'symlink' })
      if (e.kind !== 'file') continue
      const d = selection.file(path, { size: e.size, binary: e.binary ?? false })
      if (d.included) result.files.set(path, e)
      else result.skipped.push({ path, reason: d.reason })
    }
  }
  await Promise.all(Array.from({ length: READ_CONCURRENCY }, worker))
  return result
}
