/**
 * Refusals of peers that proved nothing (strangers, revoked devices), counted per source address
 * and per PeerId in fixed windows. A stranger can cause as many refusals as it can open streams
 * (2,000 pairing attempts in 3 s on loopback); each used to become one synced `_audit` entry on
 * every member (5,071 entries and +100 MB RSS in 15 s). The ledger turns them into at most:
 *
 * - the first refusal of each address in a window, reported in detail (at most `detailed` of
 *   them in a window, all addresses together);
 * - at the end of the window, one summary per address that was refused more than once ("N refused
 *   pairing attempts from ADDR in the last 60 s"), at most `summaries` of them, the rest folded
 *   into one summary for all other addresses.
 *
 * It also says when a source has used its budget (`allow`), so the caller answers RATE_LIMITED
 * without doing the work. Every map is bounded (`maxSources`); sources beyond it are counted
 * together as "other addresses", and the maps are emptied at the end of each window.
 */

export interface RefusalLimits {
  /** Length of a window (ms). */
  windowMs: number
  /** Refusals an address may cause in a window before its attempts are answered RATE_LIMITED unread. */
  perAddress: number
  /** The same per PeerId (several devices may share an address behind a NAT). */
  perPeer: number
  /** The same for all sources together. */
  total: number
  /** Refusals reported in detail in a window, all addresses together. */
  detailed: number
  /** Per-address summaries at the end of a window; more addresses share one summary. */
  summaries: number
  /** Addresses and PeerIds counted separately in a window; more share the "other" count. */
  maxSources: number
}

export const DEFAULT_REFUSAL_LIMITS: RefusalLimits = {
  windowMs: 60_000,
  perAddress: 20,
  perPeer: 10,
  total: 200,
  detailed: 10,
  summaries: 10,
  maxSources: 1024,
}

export interface RefusalSummary {
  /** The address, or undefined for the summary of every address beyond the per-address ones. */
  address?: string
  /** How many addresses it covers (1 for a per-address summary). */
  addresses: number
  /** Refusals in the window, the ones reported in detail included. */
  count: number
  /** Of those, answered RATE_LIMITED without being looked at. */
  rateLimited: number
  /** PeerIds seen (at most 2 kept: one, or "several"). */
  peers: string[]
  windowMs: number
}

interface SourceCount {
  count: number
  rateLimited: number
  peers: string[]
  /** Its first refusal was reported in detail. */
  detailed?: boolean
}

/** Where a connection comes from, as the unit a budget is kept for: an IPv4 address, an IPv6 /64, or a relay. */
export function sourceAddress(remoteAddr: string): string {
  const relay = /\/p2p\/([^/]+)\/p2p-circuit/.exec(remoteAddr)
  if (relay !== null) return `relay ${relay[1] as string}`
  const v4 = /^\/ip4\/([^/]+)/.exec(remoteAddr)
  if (v4 !== null) return v4[1] as string
  const v6 = /^\/ip6\/([^/]+)/.exec(remoteAddr)
  if (v6 !== null) {
    // A host usually holds a whole /64: counting its addresses apart would give it 2^64 budgets.
    const groups = (v6[1] as string).split('::')
    const head = (groups[0] ?? '').split(':').filter((g) => g !== '')
    const tail = groups.length > 1 ? (groups[1] ?? '').split(':').filter((g) => g !== '') : []
    const full = [...head, ...Array.from({ length: Math.max(0, 8 - head.length - tail.length) }, () => '0'), ...tail]
    return `${full.slice(0, 4).join(':')}::/64`
  }
  return remoteAddr.split('/').slice(0, 3).join('/') || 'unknown'
}

export class RefusalLedger {
  private windowStart: number | undefined
  private readonly byAddress = new Map<string, SourceCount>()
  private readonly byPeer = new Map<string, number>()
  /** Addresses beyond maxSources, and per-address summaries beyond `summaries`, counted together. */
  private readonly other: SourceCount & { addresses: number; overflow: boolean } = { count: 0, rateLimited: 0, peers: [], addresses: 0, overflow: false }
  private total = 0
  private detailedSoFar = 0

  constructor(
    private readonly limits: RefusalLimits,
    private readonly summarize: (summary: RefusalSummary) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** May a source still be refused the full way (false: answer RATE_LIMITED without looking further)? */
  allow(address: string, peerId: string): boolean {
    this.rollover()
    if (this.total >= this.limits.total) return false
    if ((this.byAddress.get(address)?.count ?? 0) >= this.limits.perAddress) return false
    return (this.byPeer.get(peerId) ?? 0) < this.limits.perPeer
  }

  /**
   * Count a refusal. True when the caller is to report it in detail (the first of its address in
   * this window, while the window's detail budget lasts); otherwise only the summary tells of it.
   */
  refuse(address: string, peerId: string, rateLimited = false): boolean {
    this.rollover()
    this.windowStart ??= this.now()
    this.total++
    let entry = this.byAddress.get(address)
    const first = entry === undefined
    if (entry === undefined && this.byAddress.size < this.limits.maxSources) {
      entry = { count: 0, rateLimited: 0, peers: [] }
      this.byAddress.set(address, entry)
    }
    const counted = entry ?? this.other
    if (entry === undefined) this.other.overflow = true
    counted.count++
    if (rateLimited) counted.rateLimited++
    if (counted.peers.length < 2 && !counted.peers.includes(peerId)) counted.peers.push(peerId)
    if (this.byPeer.has(peerId) || this.byPeer.size < this.limits.maxSources) this.byPeer.set(peerId, (this.byPeer.get(peerId) ?? 0) + 1)
    if (!first || entry === undefined || this.detailedSoFar >= this.limits.detailed) return false
    this.detailedSoFar++
    entry.detailed = true
    return true
  }

  /** End the window if its time is up: summaries for it, and every count starts again. */
  rollover(): void {
    if (this.windowStart !== undefined && this.now() - this.windowStart >= this.limits.windowMs) this.flush()
  }

  /** End the window now (the peer stops): summaries of what it counted. */
  flush(): void {
    if (this.windowStart === undefined) return
    const windowMs = Math.min(this.limits.windowMs, Math.max(0, this.now() - this.windowStart))
    let written = 0
    for (const [address, c] of this.byAddress) {
      // One refusal was reported in detail already; a summary only says more than that.
      if (c.count <= (c.detailed === true ? 1 : 0)) continue
      if (written < this.limits.summaries) {
        written++
        this.summarize({ address, addresses: 1, count: c.count, rateLimited: c.rateLimited, peers: c.peers, windowMs })
      } else {
        this.other.count += c.count
        this.other.rateLimited += c.rateLimited
        this.other.addresses++
      }
    }
    if (this.other.count > 0) {
      this.summarize({
        addresses: this.other.addresses + (this.other.overflow ? 1 : 0),
        count: this.other.count,
        rateLimited: this.other.rateLimited,
        peers: this.other.peers,
        windowMs,
      })
    }
    this.windowStart = undefined
    this.byAddress.clear()
    this.byPeer.clear()
    Object.assign(this.other, { count: 0, rateLimited: 0, peers: [], addresses: 0, overflow: false })
    this.total = 0
    this.detailedSoFar = 0
  }
}

/** "2000 refused pairing attempts from 127.0.0.1 in the last 60 s (1980 answered RATE_LIMITED, from 1 device id)". */
export function describeSummary(what: string, s: RefusalSummary): string {
  const from = s.address === undefined ? `${s.addresses} other address${s.addresses === 1 ? '' : 'es'}` : s.address
  const ids = s.peers.length > 1 ? 'several device ids' : '1 device id'
  return `${s.count} refused ${what} from ${from} in the last ${Math.max(1, Math.round(s.windowMs / 1000))} s (${s.rateLimited} answered RATE_LIMITED, from ${ids})`
}
