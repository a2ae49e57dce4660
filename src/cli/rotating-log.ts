/**
 * The log file of a detached (or launchd) peer, rotated by size: when a write would take the
 * file past `maxBytes`, peer.log.N-1 becomes peer.log.N (the oldest beyond `keep` is dropped),
 * a copy of peer.log becomes peer.log.1 and peer.log is emptied in place. Every file is 0600.
 *
 * Why copy-and-truncate rather than rename: the peer's stdout and stderr are the same file,
 * opened by `peer start --detach` before the peer ran (they catch a start-up error or a crash
 * trace that never reaches the logger). A rename would leave them writing into peer.log.1;
 * truncating in place keeps every writer on peer.log (all open it O_APPEND). The copy and the
 * truncate run synchronously in the one thread that writes log lines, so no line falls
 * between them. The cost is one copy of `maxBytes` per rotation, which blocks the peer meanwhile:
 * 10 MiB measured at about 90 ms on the 2-core test machine (the other writes: about 7 µs a line).
 *
 * Why not pino-roll: its current file carries a number (peer.1.log, peer.2.log...), so
 * `peer logs` and `start --detach` would have to find it, it writes from a worker thread (lines
 * in flight are lost on kill -9), and the peer's stderr could not follow it.
 */
import { chmodSync, closeSync, copyFileSync, existsSync, fchmodSync, fstatSync, ftruncateSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'

/** 10 MiB per file, and 5 rotated files: at most 60 MiB of log per home. */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
export const DEFAULT_LOG_KEEP = 5

export interface RotationOptions {
  maxBytes?: number
  /** Rotated files kept besides the current one (0: the current one is emptied instead). */
  keep?: number
}

export class RotatingLogFile {
  private fd: number
  private size: number
  readonly maxBytes: number
  readonly keep: number

  constructor(
    readonly path: string,
    options: RotationOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? DEFAULT_LOG_MAX_BYTES
    this.keep = options.keep ?? DEFAULT_LOG_KEEP
    this.fd = openSync(path, 'a', 0o600)
    fchmodSync(this.fd, 0o600) // a file made before, or by hand, is private too
    this.size = fstatSync(this.fd).size
  }

  /** Append `text` (whole lines), rotating first when it would not fit. Synchronous: a line written is in the file. */
  write(text: string): void {
    const bytes = Buffer.from(text, 'utf8')
    // The size on disk, not only ours: stderr lines and a restarted peer add to the same file.
    this.size = fstatSync(this.fd).size
    if (this.size > 0 && this.size + bytes.length > this.maxBytes) this.rotate()
    writeSync(this.fd, bytes)
    this.size += bytes.length
  }

  private rotate(): void {
    if (this.keep > 0) {
      rmSync(`${this.path}.${this.keep}`, { force: true })
      for (let i = this.keep - 1; i >= 1; i--) {
        if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`)
      }
      copyFileSync(this.path, `${this.path}.1`)
      chmodSync(`${this.path}.1`, 0o600)
    }
    ftruncateSync(this.fd, 0)
    this.size = 0
  }

  close(): void {
    closeSync(this.fd)
  }
}
