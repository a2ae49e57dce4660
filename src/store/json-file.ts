import { randomBytes } from 'node:crypto'
import { open, readFile, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { KitsyncError } from '../core/errors.js'

/** Read a JSON file kitsync wrote; undefined if it does not exist. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new KitsyncError('HOME_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new KitsyncError('DATA_CORRUPTION', `${file} is not valid JSON; it was left as it is`, { cause: err })
  }
}

/**
 * Replace a JSON file atomically with mode 0600 (temporary file flushed to disk, then rename;
 * on failure the old file stays and the temporary one is removed). Each call has its
 * own temporary file: two writes in the same millisecond must not share one (the second rename
 * would fail, or the file would get the bytes of both); the last rename wins.
 */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(JSON.stringify(value, null, 2) + '\n')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, file)
    await syncDir(dirname(file))
  } catch (err) {
    await rm(tmp, { force: true })
    throw new KitsyncError('STORAGE_FAILED', `cannot write ${file}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Flush a folder's entries (a rename or link just made) to disk. Best effort: the file itself is
 * whole and flushed already, and some file systems refuse to sync a folder (EINVAL).
 */
export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch {
    // The rename or link stands; only its flush to disk is left to the system.
  }
}
