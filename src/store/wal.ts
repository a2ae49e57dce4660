import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs'
import { crc32 } from 'node:zlib'
import { KitsyncError } from '../core/errors.js'

/**
 * A write-ahead file in front of LevelDB. An update is acknowledged once a synchronous
 * write(2) of it to this file returned: from then on it survives a kill -9 of the process
 * (the kernel has it), exactly as LevelDB's own unsynced log would, but without waiting for
 * a round trip through LevelDB's thread pool. The store then writes updates to LevelDB in
 * large batches; when everything written here is also in LevelDB, the file is emptied.
 * On open, whatever the file still holds is written to LevelDB before anything else.
 *
 * Record: [length of the rest: u32 BE][crc32 of the rest: u32 BE][name length: u8][name][update]
 * A torn or damaged record at the end (a crash during the write) was never acknowledged and
 * is dropped, with everything after it.
 */
export class WriteAheadFile {
  private fd: number
  private outstanding = 0
  /** Where the last whole record ends: a write that fails is cut back to here. */
  private end: number
  /** A failed append left bytes after `end` that are still to be cut (see cutBack). */
  private torn = false

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd
    this.end = fstatSync(fd).size
  }

  static open(path: string): { wal: WriteAheadFile; entries: { collection: string; update: Uint8Array }[] } {
    let entries: { collection: string; update: Uint8Array }[] = []
    try {
      entries = parse(readFileSync(path))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new KitsyncError('HOME_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`, { cause: err })
      }
    }
    const fd = openSync(path, 'a', 0o600)
    return { wal: new WriteAheadFile(path, fd), entries }
  }

  /** Append one update; throws STORAGE_FAILED if the kernel did not take it. */
  append(collection: string, update: Uint8Array): void {
    const name = Buffer.from(collection, 'utf8')
    const rest = Buffer.allocUnsafe(1 + name.byteLength + update.byteLength)
    rest[0] = name.byteLength
    name.copy(rest, 1)
    rest.set(update, 1 + name.byteLength)
    const head = Buffer.allocUnsafe(8)
    head.writeUInt32BE(rest.byteLength, 0)
    head.writeUInt32BE(crc32(rest), 4)
    const record = Buffer.concat([head, rest])
    if (this.torn && !this.cutBack()) throw new KitsyncError('STORAGE_FAILED', `cannot write ${this.path}: a failed write could not be cut back`, { details: { collection } })
    try {
      // A full disk takes part of a record (write(2) returns fewer bytes) before it refuses
      // the rest: an acknowledged record must never be a torn one, which replay drops.
      for (let at = 0; at < record.byteLength; ) {
        const n = writeSync(this.fd, record, at, record.byteLength - at)
        if (n <= 0) throw new Error(`the system took ${at} of ${record.byteLength} bytes`)
        at += n
      }
    } catch (err) {
      this.cutBack()
      throw new KitsyncError('STORAGE_FAILED', `cannot write ${this.path}: ${(err as Error).message}`, { cause: err, details: { collection } })
    }
    this.end += record.byteLength
    this.outstanding++
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
  read(): { collection: string; update: Uint8Array }[] {
    try {
      return parse(readFileSync(this.path).subarray(0, this.end))
    } catch (err) {
      throw new KitsyncError('STORAGE_FAILED', `cannot read ${this.path}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** `count` appended updates are now in LevelDB; empty the file once all are. */
  settled(count: number): void {
    this.outstanding -= count
    if (this.outstanding === 0) this.empty()
  }

  private empty(): void {
    ftruncateSync(this.fd, 0)
    this.end = 0
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

function parse(bytes: Buffer): { collection: string; update: Uint8Array }[] {
  const out: { collection: string; update: Uint8Array }[] = []
  let at = 0
  while (at + 8 <= bytes.byteLength) {
    const length = bytes.readUInt32BE(at)
    const sum = bytes.readUInt32BE(at + 4)
    if (length < 1 || at + 8 + length > bytes.byteLength) break
    const rest = bytes.subarray(at + 8, at + 8 + length)
    if (crc32(rest) !== sum) break
    const nameLength = rest[0] as number
    if (1 + nameLength > rest.byteLength) break
    out.push({ collection: rest.subarray(1, 1 + nameLength).toString('utf8'), update: new Uint8Array(rest.subarray(1 + nameLength)) })
    at += 8 + length
  }
  return out
}
