import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { KitsyncError } from '../core/errors.js'
import { encodeFrame, FrameType } from '../protocol/sync-frames.js'
import type { PeerLink } from '../sync/sync-engine.js'

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
        const frame = this.queue.shift() as Uint8Array
        this.queued -= frame.byteLength
        await this.lp.write(frame)
      }
    } catch (err) {
      this.closed = true
      this.queue = []
      this.queued = 0
      this.stream.abort(err as Error)
    } finally {
      this.writing = false
    }
  }
}
