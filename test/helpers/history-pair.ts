import { formatHlc } from '../../src/core/hlc.js'
import type { HistoryItem } from '../../src/protocol/history-frames.js'
import { HistoryExchange, type HistoryRelay } from '../../src/sync/history-exchange.js'
import type { HistorySyncHost } from '../../src/sync/history-host.js'
import type { PeerLink } from '../../src/sync/sync-host.js'
import { prng } from './memory-mesh.js'

/**
 * Two history exchanges over in-memory sets (sync/history-exchange.ts with a fake host), frames
 * delivered in waves: every frame sent in one wave is handled in the next, so the number of
 * waves is the number of one-way trips the reconciliation took.
 */

export interface MemoryHistory {
  /** id -> entry JSON */
  entries: Map<string, string>
  since: number | undefined
  /** The cutoff of entries stored on arrival (ms). */
  keepFrom: number
}

export interface PairResult {
  waves: number
  bytes: number
  frames: number
  a: HistoryExchange
  b: HistoryExchange
}

/** `n` items of `records` records with stamps from `t0` on, each with the entry the deriver would write. */
export function seededItems(seed: number, n: number, records: number, t0 = 1_700_000_000_000): Map<string, string> {
  const rand = prng(seed)
  const out = new Map<string, string>()
  while (out.size < n) {
    const key = `rec-${Math.floor(rand() * records)}`
    const ms = t0 + Math.floor(rand() * 1e9)
    const node = rand() < 0.5 ? 'devA' : 'devB'
    const stamp = formatHlc({ ms, counter: Math.floor(rand() * 100), node })
    out.set(`${key}\0${stamp}`, JSON.stringify({ v: { n: out.size }, device: node, fields: ['n'], time: ms }))
  }
  return out
}

export function memoryHost(side: MemoryHistory, initiates: boolean): HistorySyncHost {
  const enc = new TextEncoder()
  const dec = new TextDecoder()
  return {
    since: () => side.since,
    initiates: () => initiates,
    items: (_c, since) =>
      Promise.resolve([...side.entries.keys()].filter((id) => parseInt(id.slice(id.indexOf('\0') + 1, id.indexOf('\0') + 10), 36) >= since)),
    entries: (_c, ids) =>
      Promise.resolve(ids.filter((id) => side.entries.has(id)).map((id): HistoryItem => ({ id, entry: enc.encode(side.entries.get(id) as string) }))),
    store: (_c, items) => {
      let n = 0
      for (const { id, entry } of items) {
        const e = JSON.parse(dec.decode(entry)) as { time: number }
        if (e.time < side.keepFrom || side.entries.has(id)) continue
        side.entries.set(id, dec.decode(entry))
        n++
      }
      return Promise.resolve(n)
    },
  }
}

/** Run a reconciliation of one collection between A (which opens it) and B until no frame is in flight. */
export async function reconcilePair(a: MemoryHistory, b: MemoryHistory, options: { shares?: (c: string) => boolean } = {}): Promise<PairResult> {
  let wave: { to: HistoryExchange; bytes: Uint8Array }[] = []
  let bytes = 0
  let frames = 0
  const ends: HistoryExchange[] = []
  const link = (to: () => HistoryExchange): PeerLink => ({
    peerId: 'peer',
    bufferedBytes: 0,
    send: (frame) => {
      const b = frame instanceof Uint8Array ? frame : Buffer.concat(frame as Uint8Array[])
      bytes += b.byteLength
      frames++
      wave.push({ to: to(), bytes: b })
    },
    close: () => undefined,
  })
  const session = { peerId: 'peer', isReady: true, isClosed: false, shares: options.shares ?? (() => true) }
  const relay = (host: HistorySyncHost): HistoryRelay => ({ history: host, accepts: () => true, frameOut: () => undefined, stored: () => undefined })
  const ea = new HistoryExchange(
    relay(memoryHost(a, true)),
    link(() => ends[1] as HistoryExchange),
    session,
    () => 0,
  )
  const eb = new HistoryExchange(
    relay(memoryHost(b, false)),
    link(() => ends[0] as HistoryExchange),
    session,
    () => 0,
  )
  ends.push(ea, eb)
  await ea.begin('notes')
  await eb.begin('notes')
  let waves = 0
  while (wave.length > 0) {
    if (++waves > 100) throw new Error('reconciliation does not end')
    const now = wave
    wave = []
    for (const { to, bytes } of now) await to.receive(bytes)
  }
  return { waves, bytes, frames, a: ea, b: eb }
}
