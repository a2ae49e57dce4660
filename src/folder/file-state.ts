import { createHash } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { lstat, open, type FileHandle } from 'node:fs/promises'
import { decodeText } from '../core/folder-text.js'

/**
 * What the folder layer knows of one path on disk: enough to tell a change (size, times, inode)
 * without reading, and the content's hash and kind once read. The hash is SHA-256 (hex): the
 * manifest carries it, and a binary's blob is addressed by it.
 */
export type DiskEntry = { kind: 'missing' } | { kind: 'symlink' } | { kind: 'dir' } | { kind: 'other' } | FileState

export interface FileState {
  kind: 'file'
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
  /** Any execute bit set (what syncs of the mode: the rest is the device's umask). */
  executable: boolean
  /** SHA-256 of the content (hex); undefined for a file over the size cap, which is not read. */
  hash: string | undefined
  /** Not UTF-8, or holds NUL; undefined when not read. */
  binary: boolean | undefined
  /**
   * Wall-clock ms taken just before the stat this state holds (absent in states saved by older
   * versions: those are trusted as before). See `racy`.
   */
  seenAt?: number
}

/**
 * A file's times move in ticks (a few ms on Linux, 1-2 s on some file systems): a second write
 * of the same size in the tick of the first leaves size, times and inode as they were. A state
 * seen within this long of its mtime may hide such a write (git's "racily clean" entries), so
 * its hash is not reused for an unchanged stat: the file is read again.
 */
export const RACY_MS = 2000

/** Whether `known`'s hash may be stale although the stat did not change (see RACY_MS). */
export function racy(known: Pick<FileState, 'mtimeMs' | 'seenAt'>): boolean {
  return known.seenAt !== undefined && known.seenAt - known.mtimeMs < RACY_MS
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** lstat, never following a symlink; ENOENT and ENOTDIR are 'missing' (a parent replaced by a file). */
export async function lstatEntry(abs: string): Promise<DiskEntry | { kind: 'file-unread'; st: Stats; at: number }> {
  try {
    const at = Date.now()
    const st = await lstat(abs)
    if (st.isSymbolicLink()) return { kind: 'symlink' }
    if (st.isDirectory()) return { kind: 'dir' }
    if (!st.isFile()) return { kind: 'other' }
    return { kind: 'file-unread', st, at }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' }
    throw err
  }
}

/**
 * A reusable read buffer: a scan hashes 100 MB through a few of these instead of allocating a
 * Buffer per file (which left RSS ~50 MB higher after a scan of 10,000 files: memory the
 * allocator keeps once freed).
 */
export interface ReadScratch {
  buf: Buffer
}

export type Looked = Awaited<ReturnType<typeof lstatEntry>>

/**
 * The state of `abs`, reading and hashing it when it is at most `maxRead` bytes, unless `known`
 * has the same size, times and inode (then its hash is kept, as git's index does). `looked`: the
 * caller's lstatEntry of `abs` just before, not made again.
 */
export async function readDiskEntry(abs: string, maxRead: number, known?: FileState, scratch?: ReadScratch, looked?: Looked): Promise<DiskEntry> {
  const e = looked ?? (await lstatEntry(abs))
  if (e.kind !== 'file-unread') return e
  const { st } = e
  const base = {
    kind: 'file' as const,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    ino: st.ino,
    executable: (st.mode & 0o111) !== 0,
    seenAt: e.at,
  }
  if (known !== undefined && known.hash !== undefined && sameStat(known, base) && !racy(known)) return { ...base, hash: known.hash, binary: known.binary }
  if (st.size > maxRead) return { ...base, hash: undefined, binary: undefined }
  let bytes: Buffer
  try {
    bytes = await readAll(abs, st.size, scratch)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    // ELOOP: a symlink swapped in after the lstat (O_NOFOLLOW refused it).
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' }
    if (code === 'ELOOP') return { kind: 'symlink' }
    throw err
  }
  // The file may have changed between lstat and read: the size read is the one that counts.
  return { ...base, size: bytes.byteLength, hash: sha256(bytes), binary: decodeText(bytes) === undefined }
}

/**
 * A file read for a capture, in one open: its state from the descriptor read (fstat) and its
 * bytes (and its text, when it is UTF-8 without NUL: not binary), never through a symlink, never
 * blocking on a FIFO. Where readDiskEntry and a second read took an lstat, two opens and two
 * hashes, this takes one of each.
 */
export async function readFileState(abs: string): Promise<{ entry: DiskEntry; bytes?: Buffer; text?: string }> {
  let fh: FileHandle
  try {
    fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return { entry: { kind: 'missing' } }
    if (code === 'ELOOP') return { entry: { kind: 'symlink' } }
    if (code === 'ENXIO') return { entry: { kind: 'other' } }
    throw err
  }
  try {
    const seenAt = Date.now()
    const st = await fh.stat()
    if (st.isDirectory()) return { entry: { kind: 'dir' } }
    if (!st.isFile()) return { entry: { kind: 'other' } }
    const bytes = await readFrom(fh, st.size)
    const text = decodeText(bytes)
    const entry: FileState = {
      kind: 'file',
      size: bytes.byteLength,
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
      ino: st.ino,
      executable: (st.mode & 0o111) !== 0,
      hash: sha256(bytes),
      binary: text === undefined,
      seenAt,
    }
    return text === undefined ? { entry, bytes } : { entry, bytes, text }
  } finally {
    await fh.close()
  }
}

/** The whole file, never through a symlink, into `scratch` when it fits (the result is then a view of it). */
async function readAll(abs: string, sizeHint: number, scratch?: ReadScratch): Promise<Buffer> {
  const fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    return await readFrom(fh, sizeHint, scratch)
  } finally {
    await fh.close()
  }
}

async function readFrom(fh: FileHandle, sizeHint: number, scratch?: ReadScratch): Promise<Buffer> {
  let buf = scratch?.buf ?? Buffer.allocUnsafe(sizeHint + 1)
  let length = 0
  for (;;) {
    if (length === buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, 64 * 1024))
      buf.copy(bigger, 0, 0, length)
      buf = bigger
      if (scratch !== undefined) scratch.buf = bigger
    }
    const { bytesRead } = await fh.read(buf, length, buf.length - length, null)
    if (bytesRead === 0) break
    length += bytesRead
  }
  return buf.subarray(0, length)
}

export function sameStat(a: Pick<FileState, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino'>, b: Pick<FileState, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino'>): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino
}

/** Same content and mode (what a change means to the folder; times alone are not a change). */
export function sameContent(a: DiskEntry, b: DiskEntry): boolean {
  if (a.kind !== 'file' || b.kind !== 'file') return a.kind === b.kind
  return a.size === b.size && a.hash === b.hash && a.executable === b.executable
}
