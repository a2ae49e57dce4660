import { randomBytes } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
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
 * Replace a JSON file atomically with mode 0600 (temporary file, then rename). Each call has its
 * own temporary file: two writes in the same millisecond must not share one (the second rename
 * would fail, or the file would get the bytes of both); the last rename wins.
 */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 })
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw new KitsyncError('STORAGE_FAILED', `cannot write ${file}: ${(err as Error).message}`, { cause: err })
  }
}
