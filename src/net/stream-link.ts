import type { Stream } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import * as varint from 'uint8-varint'
import type { KitsyncError } from '../core/errors.js'
import { encodeFrame, FrameType } from '../protocol/sync-frames.js'
import type { PeerLink } from '../sync/sync-host.js'
import { varintLength } from './length-prefix.js'
import { halfWindowUpdates } from './yamux-window.js'

const log = logger('kitsync:net:stream-link')

/** Frames queued together are written together, up to this many bytes. */
const WRITE_BATCH_BYTES = 256 * 1024
/** Frames up to this size are copied behind their length prefix (one send); larger ones go as the prefix, then in slices. */
const COPY_BELOW_BYTES = 64 * 1024
/** A large frame is handed to the stream in slices of this size. */
const SEND_SLICE_BYTES = 256 * 1024

/** A frame as one buffer, or as its parts back to back. */
type QueuedFrame = Uint8Array | readonly Uint8Array[]

const frameBytes = (f: QueuedFrame): number => (f instanceof Uint8Array ? f.byteLength : f.reduce((n, p) => n + p.byteLength, 0))

/**
 * A PeerLink over one libp2p stream with varint-length-prefixed frames.
 *
 * Frames are read from the stream's 'message' events as they arrive, in the same turn of the
 * event loop: an update is merged before the muxer answers with a window update, so a small
 * update's trip does not wait for that write. Writes are queued and sent in batches (waiting
 * for the stream's 'drain' when its buffer is full), and the queue size is reported as
 * bufferedBytes so the engine can drop a peer that does not read.
 */
export class StreamLink implements PeerLink {
  private queue: QueuedFrame[] = []
  private queued = 0
  private writing = false
  private closed = false
  /** whenBelow() callers, woken after each write and when the link closes. */
  private waiters: (() => void)[] = []
  private readonly decoder: LengthPrefixedDecoder

  constructor(
    readonly stream: Stream,
    readonly peerId: string,
    maxFrameBytes: number,
  ) {
    halfWindowUpdates(stream)
    // The read buffer must hold one whole frame; it is also the per-stream memory cap.
    this.decoder = new LengthPrefixedDecoder({ maxDataLength: maxFrameBytes, maxBufferSize: maxFrameBytes + 16, lengthDecoder: varintLength })
  }

  get bufferedBytes(): number {
    return this.queued + this.stream.writeBufferLength
  }

  async whenBelow(bytes: number): Promise<void> {
    // Our queue only: drain() writes from it as fast as the stream takes data (it waits for
    // the stream's 'drain' when the stream is full), and wakes the waiters after each write.
    while (!this.closed && this.queued > bytes) await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  /**
   * Hand every frame to `onFrame` until the stream ends; resolves then, with the error that
   * ended it (undefined for a clean end). A malformed length prefix aborts the stream with an
   * error whose name starts with "Invalid".
   */
  readLoop(onFrame: (frame: Uint8Array) => void): Promise<Error | undefined> {
    return new Promise((resolve) => {
      let ended = false
      const end = (err: Error | undefined): void => {
        if (ended) return
        ended = true
        this.stream.removeEventListener('message', onMessage)
        this.stream.removeEventListener('close', onClose)
        this.stream.removeEventListener('remoteCloseWrite', onRemoteEnd)
        resolve(err)
      }
      const onMessage = (evt: { data: Uint8Array | { subarray(): Uint8Array } }): void => {
        if (ended) return
        try {
          for (const frame of this.decoder.decode(evt.data as Uint8Array)) {
            onFrame(frame.subarray())
            if (ended) return
          }
        } catch (err) {
          this.stream.abort(err as Error)
          end(err as Error)
        }
      }
      const onClose = (evt: { error?: Error }): void => end(evt.error)
      // Yamux sends the peer's close as a frame of its own after its last data, and every
      // message is handled here as it is dispatched: nothing the peer sent is still unread then.
      const onRemoteEnd = (): void => end(undefined)
      this.stream.addEventListener('message', onMessage)
      this.stream.addEventListener('close', onClose)
      this.stream.addEventListener('remoteCloseWrite', onRemoteEnd)
      if (this.stream.status !== 'open') end(undefined)
    })
  }

  send(frame: QueuedFrame): void {
    if (this.closed) return
    this.queue.push(frame)
    this.queued += frameBytes(frame)
    if (!this.writing) void this.drain()
  }

  close(error?: KitsyncError): void {
    if (this.closed) return
    queueMicrotask(() => this.wake())
    if (error !== undefined) {
      // Tell the peer why, then reset the stream (its read side too): a misbehaving peer
      // gets no more of our time, and never more than 2 s to take the error frame.
      this.queue = [encodeFrame({ type: FrameType.ERROR, code: error.code, message: error.message })]
      this.queued = 0
      const abort = (): void => this.stream.abort(new Error(`${error.code}: ${error.message}`))
      const timer = setTimeout(abort, 2000)
      timer.unref()
      void this.drain().finally(() => {
        clearTimeout(timer)
        abort()
      })
      this.closed = true
      return
    }
    this.closed = true
    // A stream that cannot close cleanly (the peer reset it) is gone all the same.
    void this.stream.close().catch((err: unknown) => log('closing the sync stream with %s: %e', this.peerId, err))
  }

  private async drain(): Promise<void> {
    this.writing = true
    try {
      while (this.queue.length > 0) {
        // Every frame queued so far (up to WRITE_BATCH_BYTES) in one send: one muxer frame,
        // one Noise message and one window update from the reader per batch instead of per
        // frame (a store sending 10,000 small entries spent more time in those than in them).
        let n = 0
        let bytes = 0
        while (n < this.queue.length && (n === 0 || bytes + frameBytes(this.queue[n] as QueuedFrame) <= WRITE_BATCH_BYTES))
          bytes += frameBytes(this.queue[n++] as QueuedFrame)
        const batch = this.queue.splice(0, n)
        this.queued -= bytes
        for (const chunk of lengthPrefixed(batch)) {
          if (!this.stream.send(chunk)) await this.whenDrained()
        }
        this.wake()
      }
    } catch (err) {
      this.closed = true
      this.queue = []
      this.queued = 0
      this.stream.abort(err as Error)
    } finally {
      this.writing = false
      this.wake()
    }
  }

  /** Resolves at the stream's next 'drain'; rejects if it closes first. */
  private whenDrained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.stream.removeEventListener('drain', onDrain)
        this.stream.removeEventListener('close', onClose)
      }
      const onDrain = (): void => {
        done()
        resolve()
      }
      const onClose = (): void => {
        done()
        reject(new Error('the stream closed while writing'))
      }
      this.stream.addEventListener('drain', onDrain)
      this.stream.addEventListener('close', onClose)
    })
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }
}

/**
 * The frames with their varint length prefixes, in as few buffers as possible: small frames
 * are copied into one buffer, a large frame goes as its prefix and its parts in slices (not copied).
 */
function lengthPrefixed(frames: readonly QueuedFrame[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let small: Uint8Array[] = []
  let smallBytes = 0
  const flushSmall = (): void => {
    if (small.length === 0) return
    const buf = new Uint8Array(smallBytes)
    let at = 0
    for (const f of small) {
      varint.encode(f.byteLength, buf, at)
      at += varint.encodingLength(f.byteLength)
      buf.set(f, at)
      at += f.byteLength
    }
    out.push(buf)
    small = []
    smallBytes = 0
  }
  for (const f of frames) {
    const total = frameBytes(f)
    if (total < COPY_BELOW_BYTES) {
      small.push(f instanceof Uint8Array ? f : Buffer.concat(f, total))
      smallBytes += varint.encodingLength(total) + total
      continue
    }
    flushSmall()
    out.push(varint.encode(total))
    // In slices (views, not copies): each is encrypted and on the socket before the next is
    // taken, so the peer starts reading a large frame at once rather than once megabytes of
    // it are encrypted.
    for (const part of f instanceof Uint8Array ? [f] : f) {
      for (let at = 0; at < part.byteLength; at += SEND_SLICE_BYTES) out.push(part.subarray(at, Math.min(part.byteLength, at + SEND_SLICE_BYTES)))
    }
  }
  flushSmall()
  return out
}
