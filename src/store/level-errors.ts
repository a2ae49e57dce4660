import { KitsyncError } from '../core/errors.js'

/**
 * How a failed LevelDB read or write of the document store becomes a KitsyncError: damage
 * LevelDB found is DATA_CORRUPTION naming what it belongs to, anything else STORAGE_FAILED.
 */

/** LevelDB's own report that one of its files is damaged (classic-level's LEVEL_CORRUPTION, "Corruption: ..."). */
export function isLevelCorruption(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown }; message?: unknown }
  return e.code === 'LEVEL_CORRUPTION' || e.cause?.code === 'LEVEL_CORRUPTION' || (typeof e.message === 'string' && e.message.startsWith('Corruption:'))
}

/** A write LevelDB failed with an I/O error (a full disk): it must be opened again before the next one (see DocStore.batch). */
export function isLevelIoError(err: unknown): boolean {
  const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code
  return code === 'LEVEL_IO_ERROR'
}

/** What a DATA_CORRUPTION says when LevelDB found the damage (see isLevelCorruption). */
export const levelDamage = (err: unknown): string => `LevelDB reports a damaged block in its table files (${(err as Error).message})`

export function corruption(collection: string, what: string, cause?: unknown): KitsyncError {
  return new KitsyncError('DATA_CORRUPTION', `collection ${collection}: ${what}; the stored data was left as it is`, { details: { collection }, cause })
}

/** STORAGE_FAILED for `collection`: `what` could not be done, for the reason `err` gives. */
export function storageFailure(collection: string, what: string, err: unknown): KitsyncError {
  return new KitsyncError('STORAGE_FAILED', `collection ${collection}: ${what}: ${(err as Error).message}`, { cause: err, details: { collection } })
}

/** A failed read of a collection's data: DATA_CORRUPTION where LevelDB reports damage, else STORAGE_FAILED. */
export function readFailure(collection: string, err: unknown): KitsyncError {
  return isLevelCorruption(err) ? corruption(collection, levelDamage(err), err) : storageFailure(collection, 'cannot read the store', err)
}

/** DATA_CORRUPTION of `collection` where LevelDB reports damage, else `err` as it is (for the caller to handle). */
export function damageOr(collection: string, err: unknown): unknown {
  return isLevelCorruption(err) ? corruption(collection, levelDamage(err), err) : err
}
