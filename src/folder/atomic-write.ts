import { randomBytes } from 'node:crypto'
import type { Stats } from 'node:fs'
import { lstat, mkdir, open, readdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { debugLog } from '../core/debug-log.js'
import { decodeText } from '../core/folder-text.js'
import { syncDir, type DirSyncBatch } from './dir-sync.js'
import { readDiskEntry, sameContent, sha256, type DiskEntry, type FileState } from './file-state.js'
import type { FolderTrash, TrashEntry } from './trash.js'

const log = debugLog('folder:write')

/**
 * Writing what a peer sent into the folder without ever leaving a mix of old and new content,
 * and without clobbering a local edit that was not captured yet:
 *
 *   1. the file on disk must still be what was last captured (`expected`), else the result is
 *      'changed-under-us' and nothing is written: the caller captures and merges it first
 *      (expecting nothing there, this is left to the check of 3, which is the one that counts);
 *   2. the new content goes to a temp file in the same directory (`.NAME.kitsync-tmp-RANDOM`,
 *      excluded from sync), with the old file's mode and the executable bit asked for, fsynced;
 *   3. the check of 1 again, just before the switch (a save can land during 2);
 *   4. the old file is hard-linked into the trash (when a trash is given), then the temp file is
 *      renamed over it (atomic: a reader or a crash sees the old file or the new one), and the
 *      directory is fsynced so the rename survives a power cut (with `dirSyncs`, once per
 *      directory at the batch's flush instead: the caller flushes before counting it done).
 * The state returned is always that of what was written (the hash of `data`, not read back), with
 * the renamed file's lstat when it is still the inode written, unmodified since, else the temp
 * file's: a save that lands right after the rename is not what was written, and must not be
 * taken for it (it would count as captured and never sync); the watcher sees it against this state.
 * A crash leaves at most a temp file, which `removeTempFiles` clears at start.
 */

/** What the caller last captured at the path: a file, or nothing there. */
export type Expected = FileState | 'absent'

export type WriteResult = { status: 'written'; state: FileState; trashed?: TrashEntry } | { status: 'changed-under-us'; current: DiskEntry }

export type RemoveResult = { status: 'removed'; state: undefined; trashed?: TrashEntry } | { status: 'changed-under-us'; current: DiskEntry; state?: FileState }

export interface AtomicWriteOptions {
  expected: Expected
  executable: boolean
  /** Keeps the replaced file; `path` is its folder path. */
  trash?: { trash: FolderTrash; path: string }
  /** Defer the directory fsyncs to this batch's flush. */
  dirSyncs?: DirSyncBatch
  /** Directories known to exist (checked in this batch, safe-path.ts): no mkdir for them; the ones made here are added. */
  checkedDirs?: Set<string>
}

const TEMP_MARK = '.kitsync-tmp-'

/** Temp names: random once per process, then counted (a random read per file was 5% of a batch's main thread under load). */
const TEMP_PREFIX = randomBytes(6).toString('hex')
let tempCount = 0
const tempSuffix = (): string => `${TEMP_PREFIX}${(tempCount++).toString(36)}`

/** A read of the current file large enough to hash anything a caller captured. */
const READ_ALL = Number.MAX_SAFE_INTEGER

function matches(expected: Expected, current: DiskEntry): boolean {
  if (expected === 'absent') return current.kind === 'missing'
  return current.kind === 'file' && (expected.hash === undefined ? current.size === expected.size : sameContent(expected, current))
}

export async function writeFileAtomic(abs: string, data: Uint8Array, options: AtomicWriteOptions): Promise<WriteResult> {
  const { expected } = options
  // Over nothing (a new file), the check of step 3 alone decides: one lstat, which fails, instead of two.
  let current: DiskEntry = { kind: 'missing' }
  if (expected !== 'absent') {
    current = await readDiskEntry(abs, READ_ALL, expected)
    if (!matches(expected, current)) return { status: 'changed-under-us', current }
  }
  const dir = dirname(abs)
  if (options.checkedDirs?.has(dir) !== true) {
    const made = await mkdir(dir, { recursive: true })
    // Each directory made here is an entry in its parent: synced too, or a power cut can lose the file with it.
    if (made !== undefined) for (let d = dir; d !== dirname(made) && d !== dirname(d);) await syncOrDefer((d = dirname(d)), options.dirSyncs)
    options.checkedDirs?.add(dir)
  }
  const temp = join(dir, `.${basename(abs)}${TEMP_MARK}${tempSuffix()}`)
  // A new file gets the umask's mode; a replaced one keeps its own, with the executable bit
  // (where it is readable) as the peer says.
  const oldMode = current.kind === 'file' ? (await lstat(abs)).mode & 0o7777 : undefined
  const fh = await open(temp, 'wx', oldMode === undefined ? (options.executable ? 0o777 : 0o666) : 0o600)
  let renamed = false
  try {
    await fh.writeFile(data)
    if (oldMode !== undefined) await fh.chmod(options.executable ? oldMode | ((oldMode & 0o444) >> 2) : oldMode & ~0o111)
    await fh.sync()
    const written = await fh.stat()
    await fh.close()
    current = await readDiskEntry(abs, READ_ALL, expected === 'absent' ? undefined : expected)
    if (!matches(expected, current)) return { status: 'changed-under-us', current }
    let trashed: TrashEntry | undefined
    if (options.trash !== undefined && current.kind === 'file') trashed = await options.trash.trash.keep(options.trash.path, abs, 'overwritten')
    await rename(temp, abs)
    renamed = true
    await syncOrDefer(dir, options.dirSyncs)
    const state = await writtenState(abs, data, written)
    return trashed === undefined ? { status: 'written', state } : { status: 'written', state, trashed }
  } finally {
    await fh.close().catch(() => undefined) // already closed on the normal path: closing twice is harmless
    if (!renamed) await unlink(temp).catch((err: unknown) => log(`temp file ${temp} left`, err))
  }
}

/** A peer's delete: move the file to the trash, only if it is still what was captured. */
export async function removeFileChecked(abs: string, expected: FileState, trash: { trash: FolderTrash; path: string }): Promise<RemoveResult> {
  const current = await readDiskEntry(abs, READ_ALL, expected)
  if (current.kind === 'missing') return { status: 'removed', state: undefined }
  if (!matches(expected, current))
    return current.kind === 'file' ? { status: 'changed-under-us', current, state: current } : { status: 'changed-under-us', current }
  const trashed = await trash.trash.keep(trash.path, abs, 'deleted')
  await syncDir(dirname(abs))
  return { status: 'removed', state: undefined, trashed }
}

/** Remove temp files a crash left in `dir` and below (not following symlinks). Returns how many. */
export async function removeTempFiles(dir: string): Promise<number> {
  let removed = 0
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) removed += await removeTempFiles(p)
    else if (e.isFile() && e.name.startsWith('.') && e.name.includes(TEMP_MARK)) {
      await unlink(p)
      removed++
    }
  }
  return removed
}

async function syncOrDefer(dir: string, batch: DirSyncBatch | undefined): Promise<void> {
  if (batch === undefined) await syncDir(dir)
  else batch.add(dir)
}

/**
 * The state of what was just renamed into place: the hash of `data` (computed once, not read
 * back), with the lstat of the file there when it is the inode written with its size and mtime
 * as they were before the rename, else the temp file's own (a save landed since, or the file
 * went: the watcher then reports that against this state, as the user's change).
 */
async function writtenState(abs: string, data: Uint8Array, written: Stats): Promise<FileState> {
  const seenAt = Date.now()
  const st = await lstat(abs).catch(() => undefined)
  const same = st !== undefined && st.isFile() && st.ino === written.ino && st.size === written.size && st.mtimeMs === written.mtimeMs
  const at = same ? st : written
  return {
    kind: 'file',
    size: data.byteLength,
    mtimeMs: at.mtimeMs,
    ctimeMs: at.ctimeMs,
    ino: at.ino,
    executable: (at.mode & 0o111) !== 0,
    hash: sha256(data),
    binary: decodeText(data) === undefined,
    seenAt,
  }
}
