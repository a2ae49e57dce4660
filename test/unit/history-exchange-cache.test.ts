import { afterEach, describe, expect, it, vi } from 'vitest'
import { formatHlc } from '../../src/core/hlc.js'
import { decodeHistoryFrame, encodeHistoryFrame, HistoryFrameType, RangeMode, type HistoryFrame } from '../../src/protocol/history-frames.js'
import { HistoryExchange } from '../../src/sync/history-exchange.js'
import type { HistorySyncHost } from '../../src/sync/history-host.js'
import { HistorySet, openingRanges } from '../../src/sync/history-reconcile.js'

/**
 * A session's set of history items (the ids of every entry in the window, ~10 MB of heap for
 * 100,000 records) is let go once it expires, not kept for as long as the session lasts: a
 * connected, idle peer held it (storage.peerRss in scripts/bench/storage.js).
 */

afterEach(() => {
  vi.useRealTimers()
})

const ids = Array.from({ length: 50 }, (_, i) => `k${String(i).padStart(3, '0')}\0${formatHlc({ ms: 1_800_000_000_000 + i, counter: 0, node: 'devA' })}`)

function exchange() {
  let reads = 0
  const host: HistorySyncHost = {
    since: () => 0,
    items: () => {
      reads++
      return Promise.resolve([...ids])
    },
    entries: (_collection, wanted) => Promise.resolve(wanted.map((id) => ({ id, entry: new TextEncoder().encode('{}') }))),
    store: () => Promise.resolve(0),
    initiates: () => false,
  }
  const sent: HistoryFrame[] = []
  const relay = { history: host, accepts: () => true, frameOut: () => undefined, stored: () => undefined }
  const link = { peerId: 'B', bufferedBytes: 0, send: (bytes: Uint8Array) => void sent.push(decodeHistoryFrame(bytes)), close: () => undefined }
  const session = { peerId: 'B', isReady: true, isClosed: false, shares: () => true }
  const ex = new HistoryExchange(relay, link as never, session, Date.now)
  return { ex, sent, reads: () => reads }
}

/** The peer's opening: it holds the same items (so this side answers that the range agrees). */
const opening = (): Uint8Array =>
  encodeHistoryFrame({ type: HistoryFrameType.HISTORY_RANGES, collection: 'notes', since: 0, lower: '', ranges: openingRanges(new HistorySet(ids)) })

describe('HistoryExchange set cache', () => {
  it('holds the set while a reconciliation may still use it, then lets it go', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    const { ex, sent, reads } = exchange()
    await ex.receive(opening())
    // The same items on both sides: nothing to ask for or send.
    expect(sent.filter((f) => f.type !== HistoryFrameType.HISTORY_RANGES)).toEqual([])
    expect(reads()).toBe(1)
    expect(ex.cachedSets).toBe(1)
    // Within its time, the next frame answers from the same set: read once.
    await ex.receive(opening())
    expect(reads()).toBe(1)
    vi.advanceTimersByTime(30_000)
    expect(ex.cachedSets).toBe(0)
    // Needed again later: read again, and answered the same way.
    await ex.receive(opening())
    expect(reads()).toBe(2)
    expect(ex.cachedSets).toBe(1)
  })

  it('a set that differs is answered with what the peer lacks, from a set read again after it expired', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    const { ex, sent } = exchange()
    await ex.receive(opening())
    vi.advanceTimersByTime(30_000)
    const fewer = encodeHistoryFrame({
      type: HistoryFrameType.HISTORY_RANGES,
      collection: 'notes',
      since: 0,
      lower: '',
      ranges: [{ mode: RangeMode.IDS, upper: undefined, ids: ids.slice(1) }],
    })
    await ex.receive(fewer)
    // The peer lacks the first entry: it is pushed.
    expect(sent.filter((f) => f.type === HistoryFrameType.HISTORY_ITEMS).flatMap((f) => ('items' in f ? f.items.map((item) => item.id) : []))).toEqual([ids[0]])
  })

  it('an expired entry does not remove the set read after it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    const { ex, reads } = exchange()
    await ex.receive(opening())
    vi.advanceTimersByTime(29_999)
    vi.setSystemTime(Date.now() + 1) // the entry is stale by its time, its timer not yet run
    await ex.receive(opening())
    expect(reads()).toBe(2)
    vi.advanceTimersByTime(1) // the first entry's timer: the second set stays
    expect(ex.cachedSets).toBe(1)
    vi.advanceTimersByTime(30_000)
    expect(ex.cachedSets).toBe(0)
  })
})
