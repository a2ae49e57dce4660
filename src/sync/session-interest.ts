import { Interest, type InterestRule } from '../core/selection.js'

/**
 * Which collections one session exchanges: those this device syncs with the peer (the host's
 * rule) that the peer's INTEREST wants, and which of them were asked for on this session. It
 * also remembers the interest last sent, so an unchanged selection is not sent again.
 */
export class SessionInterest {
  /** The host's rule: whether this device syncs a collection with the peer at all. */
  private readonly syncsWithPeer: (collection: string) => boolean
  /** What the peer asked for in its INTEREST (undefined: it sent none, so everything). */
  private peerInterest: Interest | undefined
  /** Collections the peer named (in its hello or by asking with STEP1): it may have data for them. */
  readonly peerNamed = new Set<string>()
  /** Collections this side asked for (STEP1 sent) on this session. */
  readonly exchanged = new Set<string>()
  private interestSent: string | undefined

  constructor(syncsWithPeer: (collection: string) => boolean) {
    this.syncsWithPeer = syncsWithPeer
  }

  /** Whether a collection is exchanged on this session: this device syncs it, and the peer's interest wants it. */
  shares(collection: string): boolean {
    if (!this.syncsWithPeer(collection)) return false
    return this.peerInterest === undefined || this.peerInterest.wants(collection)
  }

  sharedNames(names: string[]): string[] {
    return names.filter((name) => this.shares(name))
  }

  /** Every collection shared on this session: of those this device has (`local`) and those the peer named. */
  allShared(local: string[]): string[] {
    return this.sharedNames([...new Set([...local, ...this.peerNamed])])
  }

  /** The peer sent its INTEREST. */
  peerWants(rules: InterestRule[]): void {
    this.peerInterest = new Interest(rules)
  }

  /**
   * A collection no longer exchanged (either side's selection narrowed) misses what is written
   * meanwhile: it counts as never asked for, so it is asked for again once it is exchanged again.
   */
  forgetUnshared(): void {
    for (const name of this.exchanged) if (!this.shares(name)) this.exchanged.delete(name)
  }

  /** Whether `rules` differ from the interest last sent on this session; if so they count as sent now. */
  changed(rules: InterestRule[]): boolean {
    const key = JSON.stringify(rules)
    if (key === this.interestSent) return false
    this.interestSent = key
    return true
  }
}
