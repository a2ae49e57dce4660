import { ClassicLevel } from 'classic-level'
import { KitsyncError } from '../core/errors.js'
import type { BinaryLevel } from './doc-store.js'

/**
 * Open the LevelDB store of a home folder. LevelDB's own LOCK file makes the process that
 * opens it the only owner: a second opener fails with STORE_LOCKED.
 */
export async function openLevel(dir: string): Promise<BinaryLevel> {
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  try {
    await db.open()
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    if (cause?.code === 'LEVEL_LOCKED') {
      throw new KitsyncError('STORE_LOCKED', `the store in ${dir} is open in another process`, { cause: err })
    }
    throw new KitsyncError('STORAGE_FAILED', `cannot open the store in ${dir}: ${cause?.message ?? (err as Error).message}`, { cause: err })
  }
  return db as unknown as BinaryLevel
}
