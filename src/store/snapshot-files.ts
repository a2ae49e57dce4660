import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'

/** Where a snapshot kept as a file is, and what the file must hold. */
export interface SnapshotFileRef {
  file: string
  bytes: number
  crc: number
}

/** A snapshot file being written: its reference, and when it is on disk. */
export interface SnapshotFileWrite {
  ref: SnapshotFileRef
  done: Promise<void>
}

/** Snapshots of at least this many bytes are kept as files (see SnapshotFiles). */
export const SNAPSHOT_FILE_MIN_BYTES = 1024 * 1024

const SUFFIX = '.snap'
/** Collection names (src/core/names.ts, and `_` for kitsync's own) are safe as file names. */
const FILE_SAFE = /^_?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/**
 * Large snapshots as files in a folder beside LevelDB, which keeps a small reference to each
 * (key-value separation, as WiscKey and RocksDB's BlobDB do). LevelDB copies a value it is
 * given on the caller's thread, again into its write batch and its memtable, and rewrites it
 * at every compaction of its own: for a snapshot of megabytes (a new device's copy of a
 * collection) that was most of the cost of storing it. A file is written once.
 *
 * A file is named `<collection>.<random>.snap`, written whole and flushed to disk (fsync)
 * before any reference to it is stored, so a reference never points at a file that a crash
 * could have left short. Files nothing refers to (a process that died between the two
 * writes) are removed at start-up (see DocStore.sweepSnapshotFiles).
 */
export class SnapshotFiles {
  private made: Promise<unknown> | undefined

  constructor(
    readonly dir: string,
    readonly minBytes = SNAPSHOT_FILE_MIN_BYTES,
  ) {}

  /** Whether a snapshot of this collection and size goes to a file. */
  wants(collection: string, bytes: number): boolean {
    return bytes >= this.minBytes && FILE_SAFE.test(collection)
  }

  /**
   * Start writing `payload` as a new file of `collection`. Resolves once the file is open and
   * the write handed to the system, so the caller's thread is free for other work while it
   * runs; `done` resolves when the bytes are on disk (written and flushed).
   */
  async begin(collection: string, payload: Uint8Array): Promise<SnapshotFileWrite> {
    this.made ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      this.made = undefined
      throw err
    })
    await this.made
    const file = `${collection}.${randomBytes(6).toString('hex')}${SUFFIX}`
    const handle = await open(join(this.dir, file), 'wx', 0o600)
    const done = (async () => {
      try {
        // Issued before the first await: the system has the write from here on.
        for (let at = 0; at < payload.byteLength;) at += (await handle.write(payload, at)).bytesWritten
        await handle.sync()
      } catch (err) {
        // A file cut short (a full disk) is never referred to: remove it now, not at the next start.
        await handle.close().catch(() => undefined) // the write's error is the one to report
        await this.remove(file).catch(() => undefined) // else the sweep at the next start removes it
        throw err
      }
      await handle.close()
    })()
    return { ref: { file, bytes: payload.byteLength, crc: crc32(payload) }, done }
  }

  /** The file's bytes, or undefined if it is missing or does not hold what `ref` says. */
  async read(ref: SnapshotFileRef): Promise<Uint8Array | undefined> {
    let bytes: Buffer
    try {
      bytes = await readFile(join(this.dir, ref.file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    return bytes.byteLength === ref.bytes && crc32(bytes) === ref.crc ? bytes : undefined
  }

  /** Whether the file is there at its size (without reading it: reads from index rows check this much, see store/stored-check.ts). */
  async present(ref: SnapshotFileRef): Promise<boolean> {
    try {
      return (await stat(join(this.dir, ref.file))).size === ref.bytes
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
  }

  async remove(file: string): Promise<void> {
    try {
      await unlink(join(this.dir, file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  /** The snapshot files in the folder, by collection. */
  async list(): Promise<Map<string, string[]>> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
      throw err
    }
    const byCollection = new Map<string, string[]>()
    for (const file of names) {
      if (!file.endsWith(SUFFIX)) continue
      const dot = file.lastIndexOf('.', file.length - SUFFIX.length - 1)
      if (dot <= 0) continue
      const collection = file.slice(0, dot)
      let files = byCollection.get(collection)
      if (files === undefined) byCollection.set(collection, (files = []))
      files.push(file)
    }
    return byCollection
  }
}
