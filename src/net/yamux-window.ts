import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { Stream } from '@libp2p/interface'

/**
 * Make a yamux stream give its peer more window only once half of the window is used, as
 * go-yamux and rust-yamux do, instead of after every data frame as `@chainsafe/libp2p-yamux` 8
 * does.
 *
 * A window update is a frame of its own: one Noise message and one socket write on the reader,
 * one wakeup, decryption and dispatch on the writer. For small updates sent one at a time that
 * doubled the frames on the connection; a latency run spent a quarter of the writer's CPU on
 * reading window updates. The writer still always has at least half a window (128 KiB at the
 * start) it may send without waiting, and the library's window growth and its flags (the
 * stream's SYN/ACK, sent on an update while the stream is being set up) are unchanged: the
 * stream's own update runs whenever this one does not skip it.
 *
 * Streams of other muxers, or a yamux whose stream no longer has these fields, are left as
 * they are.
 *
 * Checked against @chainsafe/libp2p-yamux 8.0.1, where `recvWindow` and `recvWindowCapacity`
 * are private; package.json pins yamux to exactly that version because of this patch, and
 * test/unit/yamux-window.test.ts fails if a field is gone or the updates come per frame again.
 * Check them again before moving the pin.
 */
export function halfWindowUpdates(stream: Stream): void {
  if (!(stream instanceof YamuxStream)) return
  const window = stream as unknown as { recvWindow?: unknown; recvWindowCapacity?: unknown }
  if (typeof window.recvWindow !== 'number' || typeof window.recvWindowCapacity !== 'number') return
  const update = stream.sendWindowUpdate
  stream.sendWindowUpdate = function (this: YamuxStream) {
    const own = this as unknown as { recvWindow: number; recvWindowCapacity: number }
    if (this.state === StreamState.Established && own.recvWindowCapacity > own.recvWindow / 2) return
    update.call(this)
  }
}
