import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { defaultLogger } from '@libp2p/logger'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { halfWindowUpdates } from '../../src/net/yamux-window.js'

/**
 * net/yamux-window.ts replaces a YamuxStream's `sendWindowUpdate` and reads its private
 * `recvWindow` and `recvWindowCapacity`. If a yamux upgrade renames them, the patch leaves the
 * stream as it is without a word: these tests fail instead.
 */
describe('yamux window updates at half the window', () => {
  // Yamux frame types (the yamux spec): 0 data, 1 window update.
  const DATA = 0
  const WINDOW_UPDATE = 1
  const WINDOW = 256 * 1024

  function stream(state: StreamState): { stream: YamuxStream; updates: { flag: number; length: number }[] } {
    const updates: { flag: number; length: number }[] = []
    const s = new YamuxStream({
      id: 'test',
      streamId: 1,
      state,
      direction: 'inbound',
      log: defaultLogger().forComponent('test:yamux-window'),
      initialStreamWindowSize: WINDOW,
      // No round-trip time measured: the library does not grow the window, so the counts below are exact.
      getRTT: () => -1,
      sendFrame: (header) => {
        if (header.type === WINDOW_UPDATE) updates.push({ flag: header.flag, length: header.length })
        return true
      },
    })
    return { stream: s, updates }
  }

  const data = (bytes: number): Parameters<YamuxStream['handleData']>[0] => ({
    header: { type: DATA, flag: 0, streamID: 1, length: bytes, version: 0 },
    // (Yamux's own uint8arraylist is another major than the one this test imports.)
    data: new Uint8ArrayList(new Uint8Array(bytes)) as unknown as Parameters<YamuxStream['handleData']>[0]['data'],
  })

  it('still has the private fields the patch reads', () => {
    const { stream: s } = stream(StreamState.Established)
    const fields = s as unknown as Record<string, unknown>
    expect(fields.recvWindow).toBe(WINDOW)
    expect(fields.recvWindowCapacity).toBe(WINDOW)
    expect(typeof s.sendWindowUpdate).toBe('function')
  })

  it('sends one window update per half window received, not one per data frame', () => {
    const unpatched = stream(StreamState.Established)
    for (let i = 0; i < 8; i++) unpatched.stream.handleData(data(16 * 1024))
    // The library's own rule: an update after every data frame.
    expect(unpatched.updates).toHaveLength(8)

    const { stream: s, updates } = stream(StreamState.Established)
    halfWindowUpdates(s)
    for (let i = 0; i < 7; i++) s.handleData(data(16 * 1024))
    expect(updates).toEqual([])
    // The 8th frame uses half the window (128 KiB): one update gives it all back.
    s.handleData(data(16 * 1024))
    expect(updates).toEqual([{ flag: 0, length: 128 * 1024 }])
  })

  it('leaves the update that carries the ACK of a stream being set up', () => {
    const { stream: s, updates } = stream(StreamState.SYNReceived)
    halfWindowUpdates(s)
    s.sendWindowUpdate()
    expect(updates).toHaveLength(1)
    expect(updates[0]?.flag).not.toBe(0)
    expect(s.state).toBe(StreamState.Established)
  })
})
