import { TypedEmitter } from '../core/emitter.js'
import type { AuditType } from '../core/membership.js'
import { DEFAULT_REFUSAL_LIMITS, describeSummary, RefusalLedger, sourceAddress, type RefusalLimits } from '../core/refusal-ledger.js'
import type { PairingGuard } from '../net/pairing.js'

/** What StrangerAudit needs: the synced audit log. */
export interface AuditSink {
  audit(type: AuditType, reason: string, peer?: string): Promise<void>
}

/**
 * What peers that proved nothing cause in the synced audit log: refused pairing attempts and
 * refused connections (strangers, revoked devices), each through a RefusalLedger. The first
 * refusal of an address in a minute is recorded in detail, the rest as one summary per address
 * at the end of the minute (or when the peer stops), so a flood adds a handful of entries to
 * `_audit` on every member instead of one per attempt.
 */
export class StrangerAudit extends TypedEmitter<{ 'connection-refused': { peerId?: string; reason: string } }> {
  readonly pairing: RefusalLedger
  readonly connections: RefusalLedger
  private readonly writes = new Set<Promise<void>>()
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly sink: AuditSink,
    limits: RefusalLimits = DEFAULT_REFUSAL_LIMITS,
  ) {
    super()
    this.pairing = new RefusalLedger(limits, (s) =>
      this.record('pairing-refused', describeSummary('pairing attempts', s), s.peers.length === 1 ? s.peers[0] : undefined),
    )
    this.connections = new RefusalLedger(limits, (s) =>
      this.record('connection-refused', describeSummary('connections', s), s.peers.length === 1 ? s.peers[0] : undefined),
    )
    // Summaries are written when a window ends, also when nothing else happens after it.
    this.timer = setInterval(
      () => {
        this.pairing.rollover()
        this.connections.rollover()
      },
      Math.max(100, Math.floor(limits.windowMs / 10)),
    )
    this.timer.unref()
  }

  /** The pairing handler's guard: budgets per address and PeerId, detail for the first refusal only. */
  get guard(): PairingGuard {
    return {
      allow: (address, peerId) => this.pairing.allow(address, peerId),
      refuse: (address, peerId, rateLimited) => this.pairing.refuse(address, peerId, rateLimited),
      source: sourceAddress,
    }
  }

  /** A refused connection (a sync stream from a non-member): recorded in detail or counted for the summary. */
  connectionRefused(remoteAddr: string, peerId: string, reason: string): void {
    if (this.connections.refuse(sourceAddress(remoteAddr), peerId)) this.record('connection-refused', reason, peerId)
  }

  record(type: AuditType, reason: string, peer?: string): void {
    // The peer's log says what the audit log says, no more (a flood is not a flood of lines).
    if (type === 'connection-refused') this.emit('connection-refused', peer === undefined ? { reason } : { peerId: peer, reason })
    const write = this.sink.audit(type, reason, peer).catch(() => {
      // The store is closing or failing: the audit entry is lost, nothing else is at stake.
    })
    this.writes.add(write)
    void write.finally(() => this.writes.delete(write))
  }

  /** Close the open windows now: their summaries are recorded (and logged) at once. */
  flush(): void {
    this.pairing.flush()
    this.connections.flush()
  }

  /** Write the summaries of the open windows and wait for every audit write (before the store closes). */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.flush()
    await Promise.all([...this.writes])
  }
}
