import { describe, expect, it } from 'vitest'
import { compareItems, HistorySet, murmur3, separator } from '../../src/sync/history-reconcile.js'
import { reconcilePair, seededItems, type MemoryHistory } from '../helpers/history-pair.js'
import { prng } from '../helpers/memory-mesh.js'

/**
 * Range-based reconciliation of history items (sync/history-reconcile.ts) through two real
 * HistoryExchanges and the real frame codec, over in-memory sets drawn from a seed: both sides
 * end equal, and the bytes and trips stay small when the sets differ little.
 */

const side = (entries: Map<string, string>, since = 0, keepFrom = 0): MemoryHistory => ({ entries, since, keepFrom })

function without(entries: Map<string, string>, seed: number, n: number): { rest: Map<string, string>; removed: string[] } {
  const rand = prng(seed)
  const ids = [...entries.keys()]
  const removed = new Set<string>()
  while (removed.size < n) removed.add(ids[Math.floor(rand() * ids.length)] as string)
  return { rest: new Map([...entries].filter(([id]) => !removed.has(id))), removed: [...removed] }
}

describe('history reconciliation over two in-memory sets', () => {
  it('equal sets of 10,000 items: one opening frame, under 100 bytes, nothing sent back', async () => {
    const items = seededItems(1, 10_000, 1_000)
    const r = await reconcilePair(side(new Map(items)), side(new Map(items)))
    expect(r.frames).toBe(1)
    expect(r.bytes).toBeLessThan(100)
  })

  it.each([11, 12, 13])('seed %i: 10 missing of 10,000 on one side arrive in at most 4 round trips and under 16 KB', async (seed) => {
    const items = seededItems(seed, 10_000, 1_000)
    const { rest, removed } = without(items, seed, 10)
    const b = side(rest)
    const r = await reconcilePair(side(new Map(items)), b)
    expect([...b.entries.keys()].sort()).toEqual([...items.keys()].sort())
    for (const id of removed) expect(b.entries.get(id)).toBe(items.get(id))
    expect(r.b.counters.stored).toBe(10)
    expect(r.bytes).toBeLessThan(16 * 1024)
    expect(r.waves).toBeLessThanOrEqual(8)
  })

  it.each([21, 22])('seed %i: both sides lack some of the other: each ends with the union, in either role', async (seed) => {
    const items = seededItems(seed, 5_000, 300)
    const { rest: a } = without(items, seed, 40)
    const { rest: b } = without(items, seed + 100, 25)
    const A = side(a)
    const B = side(b)
    await reconcilePair(A, B)
    expect([...A.entries.keys()].sort()).toEqual([...items.keys()].sort())
    expect([...B.entries.keys()].sort()).toEqual([...items.keys()].sort())
  })

  it('a joiner with nothing gets everything in 1.5 round trips, and one that holds the newest of each record gets the rest', async () => {
    const items = seededItems(31, 3_000, 100)
    const empty = side(new Map())
    const r = await reconcilePair(side(new Map(items)), empty)
    expect(empty.entries.size).toBe(3_000)
    expect(r.waves).toBe(3) // opening, the joiner's (empty) list, the items
    // The newest entry of each record only (what a device that adopted the collection derived).
    const newest = new Map<string, string>()
    for (const id of [...items.keys()].sort(compareItems)) newest.set(id.slice(0, id.indexOf('\0')), id)
    const joiner = side(new Map([...newest.values()].map((id) => [id, items.get(id) as string])))
    await reconcilePair(joiner, side(new Map(items)))
    expect(joiner.entries.size).toBe(3_000)
  })

  it('only the window: items older than `since` are neither offered nor taken, and a receiver keeps only what its retention holds', async () => {
    const items = seededItems(41, 2_000, 50)
    const times = [...items.values()].map((e) => (JSON.parse(e) as { time: number }).time).sort((x, y) => x - y)
    const since = times[1000] as number
    const b = side(new Map(), since, since)
    await reconcilePair(side(new Map(items), since), b)
    expect(b.entries.size).toBe(1000)
    for (const e of b.entries.values()) expect((JSON.parse(e) as { time: number }).time).toBeGreaterThanOrEqual(since)
    // B keeps a shorter window than A asks with: B answers with its own, and nothing older comes.
    const c = side(new Map(), since, since)
    const r = await reconcilePair(side(new Map(items), 0), c)
    expect(c.entries.size).toBe(1000)
    expect(r.a.counters.itemsOut).toBe(1000)
  })

  it('history off on one side, or a collection not shared: not a byte about it', async () => {
    const items = seededItems(51, 500, 20)
    const off = side(new Map())
    off.since = undefined
    const r = await reconcilePair(side(new Map(items)), off)
    expect(off.entries.size).toBe(0)
    expect(r.a.counters.itemsOut).toBe(0)
    const apart = side(new Map())
    const r2 = await reconcilePair(side(new Map(items)), apart, { shares: () => false })
    expect(r2.frames).toBe(0)
    expect(apart.entries.size).toBe(0)
  })
})

describe('history items: order, bounds, hashes', () => {
  it('orders items by UTF-8 bytes (code points), not UTF-16 units', () => {
    const astral = '\u{1F600}' // UTF-16 surrogates D83D DE00; UTF-8 F0...
    const high = '\uFF01' // UTF-8 EF BC 81
    expect(compareItems(astral, high)).toBeGreaterThan(0)
    expect(Buffer.compare(Buffer.from(astral), Buffer.from(high))).toBeGreaterThan(0)
    const rand = prng(7)
    const words = Array.from({ length: 300 }, () => String.fromCodePoint(...Array.from({ length: 3 }, () => Math.floor(rand() * 0x1ffff) % 0xd7ff || 65)))
    const bytesOrder = [...words].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    expect([...words].sort(compareItems)).toEqual(bytesOrder)
  })

  it('a separator lies above the lower item and at or below the upper one, and never cuts a surrogate pair', () => {
    for (const [a, b] of [
      ['rec-1\u0000a', 'rec-2\u0000a'],
      ['rec', 'rec-1'],
      ['k\u{1F600}a', 'k\u{1F601}b'],
    ] as const) {
      const s = separator(a, b)
      expect(compareItems(s, a)).toBeGreaterThan(0)
      expect(compareItems(s, b)).toBeLessThanOrEqual(0)
      expect(s).toBe(Buffer.from(s).toString())
    }
  })

  it('murmur3 gives the reference values', () => {
    const enc = new TextEncoder()
    expect(murmur3(enc.encode(''), 0)).toBe(0)
    expect(murmur3(enc.encode(''), 1)).toBe(0x514e28b7)
    expect(murmur3(enc.encode('test'), 0)).toBe(0xba6bd213)
    expect(murmur3(enc.encode('Hello, world!'), 1234)).toBe(0xfaf6cdb3)
  })

  it('a range fingerprint depends only on the items in it', () => {
    const s1 = new HistorySet(['a', 'b', 'c', 'd'])
    const s2 = new HistorySet(['x', 'b', 'c', 'a0'])
    expect(s1.fingerprint(1, 3)).toEqual(s2.fingerprint(s2.indexOf('b'), s2.indexOf('c') + 1))
    expect(s1.fingerprint(0, 4)).not.toEqual(s2.fingerprint(0, 4))
  })
})
