/**
 * What one peer may cost this device: frame size, frame rate and unsent bytes, and the token
 * bucket that enforces the rate.
 */

export interface SyncLimits {
  /** Largest frame either side sends or accepts. */
  maxFrameBytes: number
  /** Frames a peer may send per second on average, and in one burst. Over it: RATE_LIMITED. */
  framesPerSecond: number
  frameBurst: number
  /** Unsent bytes allowed per peer before the session is dropped (it resyncs on reconnect). */
  maxBufferedBytes: number
}

export const DEFAULT_SYNC_LIMITS: SyncLimits = {
  maxFrameBytes: 64 * 1024 * 1024,
  maxBufferedBytes: 128 * 1024 * 1024,
  // Live updates are merged per tick, so even a busy peer sends few frames; a hello with many
  // collections sends one per collection at once, hence the large burst.
  framesPerSecond: 2_000,
  frameBurst: 20_000,
}

/** Token bucket per peer (not per stream, so opening new streams buys a peer nothing). */
export class FrameBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly limits: Pick<SyncLimits, 'framesPerSecond' | 'frameBurst'>
  private readonly now: () => number

  constructor(limits: Pick<SyncLimits, 'framesPerSecond' | 'frameBurst'>, now: () => number) {
    this.limits = limits
    this.now = now
  }

  /** Take one frame's token; false when the peer is over its rate. */
  take(peerId: string): boolean {
    const now = this.now()
    const bucket = this.buckets.get(peerId) ?? { tokens: this.limits.frameBurst, at: now }
    bucket.tokens = Math.min(this.limits.frameBurst, bucket.tokens + ((now - bucket.at) / 1000) * this.limits.framesPerSecond)
    bucket.at = now
    this.buckets.set(peerId, bucket)
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }
}
