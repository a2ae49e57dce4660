import { describe, expect, it } from 'vitest'
import { PeerBook } from '../../src/net/peer-book.js'
import type { SessionStats } from '../../src/sync/sync-session.js'

describe('peer book', () => {
  it('stamps last seen from the injected clock and keeps the last known address', () => {
    let now = 1000
    const book = new PeerBook(() => now)
    book.touch('a', 'connected', '/ip4/10.0.0.2/tcp/4771')
    now = 5000
    // Gone: no connection, so no address to tell; the last one stays.
    book.touch('a', 'disconnected')
    expect(book.list(() => undefined)).toEqual([{ peerId: 'a', state: 'disconnected', address: '/ip4/10.0.0.2/tcp/4771', lastSeen: 5000 }])
  })

  it('lists copies, with the counters and last sync of peers that have a session', () => {
    const book = new PeerBook(() => 7)
    book.touch('a', 'connected')
    book.touch('b', 'connected')
    const stats = { lastSyncAt: 42 } as SessionStats
    const listed = book.list((id) => (id === 'a' ? stats : undefined))
    expect(listed.find((p) => p.peerId === 'a')).toMatchObject({ session: stats, lastSync: 42 })
    expect(listed.find((p) => p.peerId === 'b')).toEqual({ peerId: 'b', state: 'connected', lastSeen: 7 })
    listed[0]!.state = 'disconnected'
    // The last sync stays known after the session ended.
    expect(book.list(() => undefined).map((p) => [p.peerId, p.state, p.lastSync])).toEqual([
      ['a', 'connected', 42],
      ['b', 'connected', undefined],
    ])
  })

  it('marks every peer disconnected when retired, and forgets all on reset', () => {
    const book = new PeerBook(() => 1)
    book.touch('a', 'connected')
    book.touch('b', 'connected')
    book.disconnectAll()
    expect(book.list(() => undefined).map((p) => p.state)).toEqual(['disconnected', 'disconnected'])
    book.clear()
    expect(book.has('a')).toBe(false)
    expect(book.list(() => undefined)).toEqual([])
  })
})
