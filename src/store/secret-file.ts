import { chmod, link, open, readFile, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { KitsyncError } from '../core/errors.js'
import { syncDir } from './json-file.js'

/**
 * Secret files (identity and workspace keys) are created 0600, and tightened back to 0600
 * on read if someone loosened them.
 */
export async function readSecretFile(file: string): Promise<Uint8Array | undefined> {
  try {
    const st = await stat(file)
    if ((st.mode & 0o077) !== 0) await chmod(file, 0o600)
    return new Uint8Array(await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new KitsyncError('HOME_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
}

const NO_SPACE = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO'])

/**
 * Create the file with `content`, atomically: the content is written to a private temporary
 * file that is then hard-linked into place, so no reader ever sees a half-written secret.
 * If another process created the file first, its content wins and is returned.
 */
export async function writeSecretFile(file: string, content: Uint8Array): Promise<Uint8Array> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(content)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await link(tmp, file)
    await syncDir(dirname(file))
    return content
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const existing = await readSecretFile(file)
      if (existing !== undefined) return existing
    }
    // A full disk or a failing one is the store's failure, not the home folder's permissions.
    const code = NO_SPACE.has((err as NodeJS.ErrnoException).code ?? '') ? 'STORAGE_FAILED' : 'HOME_UNREADABLE'
    throw new KitsyncError(code, `cannot write ${file}: ${(err as Error).message}`, { cause: err })
  } finally {
    await rm(tmp, { force: true })
  }
}
