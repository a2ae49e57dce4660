import {
  closeSync,
  constants,
  copyFileSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs'
import { crc32 } from 'node:zlib'
import { KitsyncError } from '../core/errors.js'
import { decodeRest, encodeRest, nameOf, type WalEntry, type WalRows } from './wal-record.js'

export type { WalEntry, WalRows } from './wal-record.js'

/** The buffer records are put together in (see WriteAheadFile.scratch): grown up to MAX_SCRATCH_BYTES, larger records get one of their own. */
const SCRATCH_BYTES = 64 * 1024
const MAX_SCRATCH_BYTES = 1024 * 1024

/**
 * A write-ahead file in front of LevelDB. An update is acknowledged once a synchronous
 * write(2) of it to this file returned: from then on it survives a kill -9 of the process
 * (the kernel has it), exactly as LevelDB's own unsynced log would, but without waiting for
 * a round trip through LevelDB's thread pool. The store then writes updates to LevelDB in
 * large batches; when everything written here is also in LevelDB, the file is emptied.
 * On open, whatever the file still holds is written to LevelDB before anything else.
 *
 * Record: [length of the rest: u32 BE][crc32 of the rest: u32 BE][rest], the rest being a
 * collection's name and an update, with the update's seq and the rows derived so far in the
 * records written since rows went with updates (wal-record.ts).
 *
 * On open, a record cut short at the end (a write a crash did not finish: fewer bytes than its
 * length says) is dropped and cut off, with a warning. Any other damage (bytes that are no
 * record, with whole records or a complete-looking record after them) is not a crash's doing:
 * the whole records are found again past it (the next offset where length, name and crc32
 * hold), the file as it was is kept aside as `store.wal.damaged-<time>`, the file is rewritten
 * with the whole records only, and open fails once with DATA_CORRUPTION naming the byte offset.
 * The next open stores those records as usual.
 */
export class WriteAheadFile {
  private fd: number
  private outstanding = 0
  private written = 0
  /** Where the last whole record ends: a write that fails is cut back to here. */
  private end: number
  /** A failed append left bytes after `end` that are still to be cut (see cutBack). */
  private torn = false
  private buffer = Buffer.allocUnsafe(SCRATCH_BYTES)
  /** Where a record is put together: written at once, it is not kept, so one buffer serves every append (no allocation each). */
  private readonly scratch = (bytes: number): Buffer => {
    if (bytes > this.buffer.byteLength) {
      if (bytes > MAX_SCRATCH_BYTES) return Buffer.allocUnsafe(bytes)
      this.buffer = Buffer.allocUnsafe(Math.min(MAX_SCRATCH_BYTES, Math.max(bytes, 2 * this.buffer.byteLength)))
    }
    return this.buffer.subarray(0, bytes)
  }

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd
    this.end = fstatSync(fd).size
  }

  static open(path: string): { wal: WriteAheadFile; entries: WalEntry[] } {
    let scan: Scan | undefined
    try {
      scan = scanRecords(readFileSync(path))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new KitsyncError('HOME_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`, { cause: err })
      }
    }
    if (scan !== undefined && scan.damaged.length > 0) setAside(path, scan)
    const fd = openSync(path, 'a', 0o600)
    if (scan?.tornAt !== undefined) {
      const bytes = scan.bytes.byteLength - scan.tornAt
      process.emitWarning(`${path}: dropped ${bytes} bytes at byte ${scan.tornAt}, a record cut short (a write a crash did not finish, or the file was cut)`, {
        code: 'KITSYNC_WAL_TORN',
      })
      // Appends must follow the last whole record, or the next open would take them for damage.
      ftruncateSync(fd, scan.tornAt)
    }
    return { wal: new WriteAheadFile(path, fd), entries: scan?.entries ?? [] }
  }

  /**
   * Append one update (with `seq`, the seq it takes in the collection's log, and the rows
   * derived so far, see wal-record.ts; an empty update: rows only); throws STORAGE_FAILED if
   * the kernel did not take it.
   */
  append(collection: string, update: Uint8Array, seq?: number, rows?: WalRows): void {
    const record = encodeRest(collection, update, seq, rows, 8, this.scratch)
    const rest = record.subarray(8)
    record.writeUInt32BE(rest.byteLength, 0)
    record.writeUInt32BE(crc32(rest), 4)
    if (this.torn && !this.cutBack())
      throw new KitsyncError('STORAGE_FAILED', `cannot write ${this.path}: a failed write could not be cut back`, { details: { collection } })
    try {
      // A full disk takes part of a record (write(2) returns fewer bytes) before it refuses
      // the rest: an acknowledged record must never be a torn one, which replay drops.
      for (let at = 0; at < record.byteLength;) {
        const n = writeSync(this.fd, record, at, record.byteLength - at)
        if (n <= 0) throw new Error(`the system took ${at} of ${record.byteLength} bytes`)
        at += n
      }
    } catch (err) {
      this.cutBack()
      throw new KitsyncError('STORAGE_FAILED', `cannot write ${this.path}: ${(err as Error).message}`, { cause: err, details: { collection } })
    }
    this.end += record.byteLength
    this.written++
    if (update.byteLength > 0) this.outstanding++
  }

  /**
   * Remove what a failed append left after the last whole record, so the file stays a clean
   * run of records and the next append lands right after it. (Truncating to a smaller size
   * needs no space; should it fail anyway, the next append cuts back before it writes.)
   */
  private cutBack(): boolean {
    try {
      ftruncateSync(this.fd, this.end)
      this.torn = false
    } catch {
      this.torn = true
    }
    return !this.torn
  }

  /** The whole records the file holds now (a collection reopened after a failed write takes its own from them). */
  read(): WalEntry[] {
    try {
      return scanRecords(readFileSync(this.path).subarray(0, this.end)).entries
    } catch (err) {
      throw new KitsyncError('STORAGE_FAILED', `cannot read ${this.path}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Records appended since the file was last emptied (it is emptied once LevelDB has all of them). */
  get records(): number {
    return this.written
  }

  /** `count` appended updates are now in LevelDB; empty the file once all are. */
  settled(count: number): void {
    this.outstanding -= count
    if (this.outstanding === 0) this.empty()
  }

  private empty(): void {
    ftruncateSync(this.fd, 0)
    this.end = 0
    this.written = 0
    this.torn = false
  }

  /** Everything read at open is now in LevelDB. */
  clear(): void {
    if (this.outstanding === 0) {
      this.empty()
      fsyncSync(this.fd)
    }
  }

  close(): void {
    if (this.fd < 0) return
    if (this.outstanding === 0) this.empty()
    closeSync(this.fd)
    this.fd = -1
  }
}

interface Scan {
  bytes: Buffer
  entries: WalEntry[]
  /** The whole records, as [start, end) byte ranges. */
  whole: [number, number][]
  /** Bytes that are no record and not a tear (see WriteAheadFile). */
  damaged: { at: number; bytes: number }[]
  /** Where a record cut short at the end starts. */
  tornAt?: number
}

/** Bytes a collection name is made of (src/core/names.ts, and `_` for kitsync's own). */
const NAME_BYTE = new Uint8Array(256)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-') NAME_BYTE[c.charCodeAt(0)] = 1

/** The end of the whole, intact record at `at`, or undefined. The cheap checks go before the crc32. */
function recordEnd(bytes: Buffer, at: number): number | undefined {
  if (at + 9 > bytes.byteLength) return undefined
  const length = bytes.readUInt32BE(at)
  const end = at + 8 + length
  if (end > bytes.byteLength || length < 1) return undefined
  const name = nameOf(bytes, at + 8, length)
  if (name === undefined || name[1] < 1) return undefined
  for (let i = name[0]; i < name[0] + name[1]; i++) if (NAME_BYTE[bytes[i] as number] !== 1) return undefined
  return crc32(bytes.subarray(at + 8, end)) === bytes.readUInt32BE(at + 4) ? end : undefined
}

function scanRecords(bytes: Buffer): Scan {
  const scan: Scan = { bytes, entries: [], whole: [], damaged: [] }
  for (let at = 0; at < bytes.byteLength;) {
    const end = recordEnd(bytes, at)
    if (end !== undefined) {
      scan.entries.push(decodeRest(bytes, at + 8, end))
      scan.whole.push([at, end])
      at = end
      continue
    }
    let next = at + 1
    while (next < bytes.byteLength && recordEnd(bytes, next) === undefined) next++
    if (next < bytes.byteLength) {
      scan.damaged.push({ at, bytes: next - at })
      at = next
      continue
    }
    // Nothing whole after `at`. A crash leaves fewer bytes than the record's length says; a
    // complete record that fails its checks was damaged after it was written.
    if (at + 8 > bytes.byteLength || at + 8 + bytes.readUInt32BE(at) > bytes.byteLength) scan.tornAt = at
    else scan.damaged.push({ at, bytes: bytes.byteLength - at })
    break
  }
  return scan
}

/**
 * Keep a damaged file aside as it is (a hard link: no copy, no space), rewrite it with its whole
 * records only, and fail with DATA_CORRUPTION. Nothing is deleted: the damaged bytes stay in the
 * kept file for inspection, and the whole records are stored at the next open.
 */
function setAside(path: string, scan: Scan): never {
  const first = scan.damaged[0] as { at: number; bytes: number }
  const unreadable = scan.damaged.reduce((n, d) => n + d.bytes, 0)
  const kept = `${path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`
  const where = `${path} is damaged at byte ${first.at} (${unreadable} bytes unreadable${scan.damaged.length > 1 ? ` in ${scan.damaged.length} places` : ''})`
  const details = { file: path, offset: first.at, unreadableBytes: unreadable, keptAs: kept }
  const tmp = `${path}.${process.pid}.tmp`
  try {
    try {
      linkSync(path, kept)
    } catch {
      // No hard link (a file system without them): a copy keeps the damaged file just as well.
      copyFileSync(path, kept, constants.COPYFILE_EXCL)
    }
    const fd = openSync(tmp, 'w', 0o600)
    try {
      for (const [start, end] of scan.whole) {
        for (let at = start; at < end;) at += writeSync(fd, scan.bytes, at, end - at)
      }
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw new KitsyncError('DATA_CORRUPTION', `${where}; it was left as it is, as its whole records could not be set apart: ${(err as Error).message}`, {
      cause: err,
      details,
    })
  }
  throw new KitsyncError(
    'DATA_CORRUPTION',
    `${where}: kept as ${kept}; its ${scan.whole.length} whole records are kept and stored at the next start (run the command again); an update in the damaged bytes that the store did not have yet is lost on this device, and other devices that have it send it again`,
    { details },
  )
}
