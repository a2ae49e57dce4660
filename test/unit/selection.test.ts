import { describe, expect, it } from 'vitest'
import { applyItemsChange, Interest, ItemSelection, matchesPattern, ON_DEMAND_PREFIXES } from '../../src/core/selection.js'
import { decodeFrame, encodeFrame, FrameType } from '../../src/protocol/sync-frames.js'

describe('ItemSelection', () => {
  it('matches names and patterns literally except * and ?', () => {
    expect(matchesPattern('watchlists', 'watchlists')).toBe(true)
    expect(matchesPattern('watchlists', 'watch*')).toBe(true)
    expect(matchesPattern('alerts', 'watch*')).toBe(false)
    expect(matchesPattern('a.b', 'a?b')).toBe(true)
    // '.' and '-' are literal, not regex syntax
    expect(matchesPattern('aXb', 'a.b')).toBe(false)
    expect(matchesPattern('drawings.AAPL-1D', 'drawings.*')).toBe(true)
  })

  it('syncs everything but on-demand collections by default, and always the internal ones', () => {
    const s = new ItemSelection()
    expect(ON_DEMAND_PREFIXES).toContain('drawings.')
    expect(s.syncs('watchlists', false)).toBe(true)
    expect(s.syncs('drawings.AAPL-1D', false)).toBe(false)
    // a held on-demand collection (drawn here, or fetched) keeps syncing
    expect(s.syncs('drawings.AAPL-1D', true)).toBe(true)
    expect(s.syncs('_members', false)).toBe(true)
    expect(s.reason('drawings.MSFT-1H', false)).toBe('on demand (fetch it)')
  })

  it('with items, syncs only them; on-demand ones only when named with their prefix', () => {
    const s = new ItemSelection({ items: ['watchlists', 'alerts', '*'] })
    expect(s.syncs('journal', false)).toBe(true)
    expect(s.syncs('drawings.AAPL-1D', false)).toBe(false)
    const narrow = new ItemSelection({ items: ['watchlists', 'drawings.AAPL-*'] })
    expect(narrow.syncs('watchlists', true)).toBe(true)
    expect(narrow.syncs('alerts', true)).toBe(false)
    expect(narrow.reason('alerts', true)).toBe('not in items')
    expect(narrow.syncs('drawings.AAPL-1D', false)).toBe(true)
    expect(narrow.syncs('drawings.MSFT-1D', false)).toBe(false)
    expect(narrow.syncs('_revoked', false)).toBe(true)
  })

  it('local-only wins over items, also for held on-demand collections, never for internal ones', () => {
    const s = new ItemSelection({ items: ['*', 'drawings.*'], localOnly: ['scratch*', 'drawings.PRIV*', '_members'] })
    expect(s.syncs('scratchpad', true)).toBe(false)
    expect(s.reason('scratchpad', true)).toBe('local-only')
    expect(s.syncs('drawings.PRIVATE', true)).toBe(false)
    expect(s.syncs('drawings.AAPL-1D', false)).toBe(true)
    expect(s.syncs('_members', true)).toBe(true)
  })

  it('its interest rules say to a peer exactly what syncs (last matching rule wins)', () => {
    const s = new ItemSelection({ items: ['watch*', 'drawings.AAPL-1D'], localOnly: ['watchsecret'] })
    const peerView = new Interest(s.rules())
    for (const name of ['watchlists', 'watchsecret', 'alerts', 'drawings.AAPL-1D', 'drawings.MSFT-1D', '_audit']) {
      expect(peerView.wants(name), name).toBe(s.syncs(name, false))
    }
    expect(s.rules()).toEqual([
      { include: true, pattern: 'watch*' },
      { include: false, pattern: 'drawings.*' },
      { include: true, pattern: 'drawings.AAPL-1D' },
      { include: false, pattern: 'watchsecret' },
    ])
  })

  it('refuses invalid patterns', () => {
    expect(() => new ItemSelection({ items: ['a/b'] })).toThrow(/invalid item/)
    expect(() => new ItemSelection({ localOnly: [''] })).toThrow(/invalid item/)
    expect(() => applyItemsChange({}, { items: { add: ['x y'] } })).toThrow(/invalid item/)
  })

  it('applies changes: set, add (to everything), remove, back to everything', () => {
    expect(applyItemsChange({}, { items: { set: ['a', 'b', 'a'] } })).toEqual({ items: ['a', 'b'], localOnly: [] })
    expect(applyItemsChange({ items: ['a'] }, { items: { add: ['b'] } })).toEqual({ items: ['a', 'b'], localOnly: [] })
    // adding an on-demand collection to "everything" keeps everything
    expect(applyItemsChange({}, { items: { add: ['drawings.AAPL-1D'] } })).toEqual({ items: ['*', 'drawings.AAPL-1D'], localOnly: [] })
    expect(applyItemsChange({ items: ['a', 'b'] }, { items: { remove: ['a'] } })).toEqual({ items: ['b'], localOnly: [] })
    expect(applyItemsChange({ items: ['a'] }, { items: { set: null } })).toEqual({ items: undefined, localOnly: [] })
    expect(applyItemsChange({ localOnly: ['x'] }, { localOnly: { add: ['y'], remove: ['x'] } })).toEqual({ items: undefined, localOnly: ['y'] })
    expect(() => applyItemsChange({}, { items: { remove: ['alerts'] } })).toThrow(/syncs every collection/)
  })
})

describe('INTEREST frame', () => {
  it('round-trips and rejects bad patterns and flags', () => {
    const rules = [
      { include: true, pattern: 'watch*' },
      { include: false, pattern: 'drawings.*' },
    ]
    const bytes = encodeFrame({ type: FrameType.INTEREST, rules })
    expect([...bytes]).toEqual([3, 2, 1, 6, ...Buffer.from('watch*'), 0, 10, ...Buffer.from('drawings.*')])
    expect(decodeFrame(bytes)).toEqual({ type: FrameType.INTEREST, rules })
    expect(() => decodeFrame(new Uint8Array([3, 1, 2, 1, 0x61]))).toThrow(/flag/)
    expect(() => decodeFrame(new Uint8Array([3, 1, 1, 3, 0x61, 0x2f, 0x62]))).toThrow(/invalid interest pattern/)
    expect(() => decodeFrame(new Uint8Array([3, 1, 1, 1, 0x61, 0]))).toThrow(/trailing/)
  })
})
