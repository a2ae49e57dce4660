import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { KitsyncError } from '../core/errors.js'
import { encodeFrame, FrameType } from '../protocol/sync-frames.js'
import type { PeerLink } from '../sync/sync-engine.js'

/** Frames queued together are written together, up to this many bytes. */
const WRITE_BATCH_BYTES = 256 * 1024

/**
 * A PeerLink over one libp2p stream with length-prefixed frames. Writes are queued and
 * written one at a time (lpStream waits for 'drain'), and the queue size is reported as
 * bufferedBytes so the engine can drop a peer that does not read.
 */
export class StreamLink implements PeerLink {
  private queue: Uint8Array[] = []
  private queued = 0
  private writing = false
  private closed = false
  /** whenBelow() callers, woken after each write and when the link closes. */
  private waiters: (() => void)[] = []
  private readonly lp

  constructor(
    readonly stream: Stream,
    readonly peerId: string,
    maxFrameBytes: number,
  ) {
    // The read buffer must hold one whole frame; it is also the per-stream memory cap.
    this.lp = lpStream(stream, { maxDataLength: maxFrameBytes, maxBufferSize: maxFrameBytes + 16 })
  }

  get bufferedBytes(): number {
    return this.queued + this.stream.writeBufferLength
  }

  async whenBelow(bytes: number): Promise<void> {
    // Our queue only: drain() writes from it as fast as the stream takes data (it waits for
    // the stream's 'drain' when the stream is full), and wakes the waiters after each write.
    while (!this.closed && this.queued > bytes) await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  /** Read frames until the stream ends; resolves with the error that ended it, if any. */
  async readLoop(onFrame: (frame: Uint8Array) => void): Promise<Error | undefined> {
    try {
      for (;;) {
        const msg = await this.lp.read()
        onFrame(msg.subarray())
      }
    } catch (err) {
      return err as Error
    }
  }

  send(frame: Uint8Array): void {
    if (this.closed) return
    this.queue.push(frame)
    this.queued += frame.byteLength
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
    void this.stream.close().catch(() => undefined)
  }

  private async drain(): Promise<void> {
    this.writing = true
    try {
      while (this.queue.length > 0) {
        // Every frame queued so far (up to WRITE_BATCH_BYTES) in one write: one muxer frame,
        // one Noise message and one window update from the reader per batch instead of per
        // frame (a store sending 10,000 small entries spent more time in those than in them).
        let n = 0
        let bytes = 0
        while (n < this.queue.length && (n === 0 || bytes + (this.queue[n] as Uint8Array).byteLength <= WRITE_BATCH_BYTES)) bytes += (this.queue[n++] as Uint8Array).byteLength
        const batch = this.queue.splice(0, n)
        this.queued -= bytes
        if (batch.length === 1) await this.lp.write(batch[0] as Uint8Array)
        else await this.lp.writeV(batch)
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

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }
}
