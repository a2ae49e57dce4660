import type { AbstractLevel } from 'abstract-level'
import { Level } from 'level'
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError } from '../core/errors.js'
import type { HomePaths } from './home.js'

/** Any abstract-level database with string keys and binary values (classic-level, memory-level). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type BinaryLevel = AbstractLevel<any, string, Uint8Array>

const log = debugLog('store:level')

/**
 * Open the LevelDB store of a home folder. LevelDB's own LOCK file makes the process that
 * opens it the only owner: a second opener fails with STORE_LOCKED. Without `createIfMissing`
 * a folder without CURRENT is refused rather than made a new database.
 *
 * `level` is classic-level in Node (and browser-level in a browser, for a later browser
 * runtime): the options and the error causes read here are classic-level's.
 */
export async function openLevel(dir: string, options: { createIfMissing?: boolean } = {}): Promise<BinaryLevel> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: options.createIfMissing ?? true })
  try {
    await db.open()
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    if (cause?.code === 'LEVEL_LOCKED') {
      throw new KitsyncError('STORE_LOCKED', `the store in ${dir} is open in another process`, { cause: err })
    }
    // A table or MANIFEST file missing or damaged: LevelDB refuses before it changes any of them.
    if (cause?.message?.startsWith('Corruption:') === true) {
      throw new KitsyncError(
        'DATA_CORRUPTION',
        `the store in ${dir} is damaged (LevelDB: ${cause.message}); kitsync did not open it and changed nothing: restore store/ from a backup, or move the home folder aside and join the workspace again from another device`,
        { cause: err },
      )
    }
    throw new KitsyncError('STORAGE_FAILED', `cannot open the store in ${dir}: ${cause?.message ?? (err as Error).message}`, { cause: err })
  }
  return db as unknown as BinaryLevel
}

/**
 * Open the store of a home folder, creating it only where nothing says a store was there.
 *
 * classic-level opens a folder without CURRENT as a new, empty database and then deletes the
 * table files it does not know, and the snapshot sweep then deletes every snapshot file, since
 * the new store refers to none: one lost 16-byte file cost the whole workspace. So a store is
 * created only in a home that shows no sign of having held one; once it exists it is opened
 * with `createIfMissing: false`, and `store.marker` (written once it exists) remembers it.
 */
export async function openHomeStore(paths: HomePaths): Promise<BinaryLevel> {
  const currentFile = join(paths.store, 'CURRENT')
  let current = await exists(currentFile)
  if (!current) {
    const found = await storeSigns(paths)
    // A process creating the store meanwhile writes CURRENT before any file that counts as a
    // sign: a sign seen with CURRENT still missing after it is a store that lost CURRENT.
    current = await exists(currentFile)
    if (!current && found.signs.length > 0) throw missingStore(paths, found)
  }
  let db: BinaryLevel
  try {
    db = await openLevel(paths.store, { createIfMissing: !current })
  } catch (err) {
    // CURRENT went between the check and the open: LevelDB refused to make a new store (it
    // touched only its LOCK and info log).
    if (current && !(await exists(currentFile))) throw missingStore(paths, await storeSigns(paths))
    throw err
  }
  try {
    if (!(await exists(paths.storeMarker))) await writeMarker(paths.storeMarker)
  } catch (err) {
    await db.close()
    throw new KitsyncError('STORAGE_FAILED', `cannot write ${paths.storeMarker}: ${(err as Error).message}`, { cause: err })
  }
  return db
}

/**
 * What in the home says a store was there, for a store/ without CURRENT. LevelDB writes CURRENT
 * (by a rename) right after MANIFEST-000001 when it creates a database, so that file alone is a
 * creation that did not finish, which holds nothing.
 */
async function storeSigns(paths: HomePaths): Promise<StoreSigns> {
  const signs: string[] = []
  const files = await listDir(paths.store)
  const tables = files.filter((f) => /^\d+\.(ldb|sst)$/.test(f)).length
  const logs = files.filter((f) => /^\d+\.log$/.test(f)).length
  const manifests = files.filter((f) => /^MANIFEST-\d+$/.test(f) && f !== 'MANIFEST-000001')
  if (tables + logs + manifests.length > 0) {
    signs.push(
      `store/ holds ${[count(tables, 'table file'), count(logs, 'log file'), count(manifests.length, 'MANIFEST file')].filter((s) => s !== '').join(', ')}`,
    )
  }
  const snapshots = (await listDir(paths.snapshots)).filter((f) => f.endsWith('.snap')).length
  if (snapshots > 0) signs.push(`snapshots/ holds ${count(snapshots, 'snapshot file')}`)
  // Absent: no sign. Any other failure counts as none too, and the WAL's own open reports it.
  const wal = await stat(paths.wal).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`cannot stat ${paths.wal} while looking for signs of a store`, err)
    return undefined
  })
  if (wal !== undefined && wal.size > 0) signs.push(`store.wal holds ${wal.size} bytes of writes`)
  if (await exists(paths.storeMarker)) {
    const marker = await readFile(paths.storeMarker, 'utf8').catch(() => '') // its date is only a detail of the message
    const created = /^created (\S+)/.exec(marker)?.[1]
    signs.push(`store.marker says a store was created here${created === undefined ? '' : ` (${created})`}`)
  }
  return { signs, manifests, storeDir: files.length > 0 || (await exists(paths.store)) }
}

interface StoreSigns {
  /** What says a store was there, for the message. */
  signs: string[]
  /** The MANIFEST files in store/ (CURRENT names the one in use). */
  manifests: string[]
  /** store/ itself is there. */
  storeDir: boolean
}

function missingStore(paths: HomePaths, { signs, manifests, storeDir }: StoreSigns): KitsyncError {
  const what = storeDir ? 'store/CURRENT is missing' : 'store/ is missing'
  const elsewise = 'restore store/ from a backup, or move the home folder aside and join the workspace again from another device'
  // CURRENT holds only the name of the MANIFEST file in use: with one left, that is the one.
  const hint =
    manifests.length === 1
      ? `If only CURRENT was lost, put it back: echo ${manifests[0]} > '${join(paths.store, 'CURRENT')}'; otherwise ${elsewise}`
      : `To recover, ${elsewise}`
  return new KitsyncError(
    'DATA_CORRUPTION',
    `${what} in ${paths.home} but ${signs.length === 0 ? 'it was there a moment ago' : signs.join('; ')}: kitsync did not open the store and changed nothing. ${hint}`,
  )
}

const count = (n: number, what: string): string => (n === 0 ? '' : `${n} ${what}${n === 1 ? '' : 's'}`)

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new KitsyncError('HOME_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return []
    throw new KitsyncError('HOME_UNREADABLE', `cannot read ${dir}: ${(err as Error).message}`, { cause: err })
  }
}

/** Write the marker whole and durably (temporary file, fsync, rename, fsync of the folder). */
async function writeMarker(file: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  try {
    const fh = await open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(
        `created ${new Date().toISOString()}\nkitsync keeps its LevelDB store in store/; this file says one exists, so a store/ found without its CURRENT file is refused, never made new.\n`,
      )
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, file)
  } finally {
    await rm(tmp, { force: true })
  }
  const dir = await open(dirname(file), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/**
 * Let LevelDB drop deleted entries of [start, end] from its files now rather than whenever its
 * own compaction gets there (after a collection's compaction: the store stays close to the size
 * of the snapshot). A hint: its own compactions do the same later, so a failure is ignored.
 */
export function compactHint(db: BinaryLevel, start: string, end: string): void {
  const level = db as BinaryLevel & { compactRange?: (start: string, end: string) => Promise<void> }
  if (typeof level.compactRange === 'function') void level.compactRange(start, end).catch(() => undefined)
}
