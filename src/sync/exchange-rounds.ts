/**
 * The bookkeeping of state-vector exchanges on one session. A round is a set of requests
 * (STEP1) sent together, such as the catch-up after the hello or a `resync`; it completes once
 * the peer has answered (STEP2) every one of them. Answers come in the order of the requests,
 * so counting the requests and the answers per collection matches them up, even when a
 * collection is asked for again before the first answer arrived.
 */

/** The outcome of one state-vector exchange with a peer (see SyncSession.resync). */
export interface RoundResult {
  /** Every collection asked for was answered. */
  complete: boolean
  collections: number
  collectionsDone: number
}

/** Throttle of progress events within one exchange (the first and the last are always sent). */
export const PROGRESS_INTERVAL_MS = 200

export interface RoundProgress {
  collectionsDone: number
  collectionsTotal: number
  /** Bytes received from the peer since the round opened. */
  bytesIn: number
}

/** What the rounds of one session need from it. */
export interface RoundsHost {
  now(): number
  /** Bytes received on the session so far. */
  bytesIn(): number
  isClosed(): boolean
  /** A round (opened with progress) advanced; `collection`: the answer that moved it (absent in the first report). */
  progress(progress: RoundProgress, collection?: string): void
  /** A round got every answer: one sync with the peer. */
  /** A round completed, `ms` after it opened. */
  completed(ms: number): void
}

/** One round, as handed from `open` to `requested` and `settle`. */
export interface Round {
  /** Collection -> how many answers for it must have arrived. */
  waiting: Map<string, number>
  total: number
  openedAt: number
  done: number
  bytesInAtStart: number
  progress: boolean
  lastProgressAt: number
  resolve: (result: RoundResult) => void
}

export class ExchangeRounds {
  private readonly host: RoundsHost
  /** STEP1 sent and STEP2 received, per collection: answers come in order, so counts match them up. */
  private readonly asked = new Map<string, number>()
  private readonly answered = new Map<string, number>()
  private readonly rounds = new Set<Round>()

  constructor(host: RoundsHost) {
    this.host = host
  }

  /** A new round; `progress`: it reports progress while it runs. */
  open(progress: boolean): Round {
    return {
      waiting: new Map(),
      total: 0,
      openedAt: this.host.now(),
      done: 0,
      bytesInAtStart: this.host.bytesIn(),
      progress,
      lastProgressAt: -Infinity,
      resolve: () => undefined,
    }
  }

  /** A request (STEP1) for a collection is sent, as part of `round` if given. */
  requested(name: string, round?: Round): void {
    const asked = (this.asked.get(name) ?? 0) + 1
    this.asked.set(name, asked)
    if (round !== undefined && !round.waiting.has(name)) {
      round.waiting.set(name, asked)
      round.total++
    }
  }

  /** Every request of the round is sent: wait for the answers (some may be in already). */
  settle(round: Round): Promise<RoundResult> {
    return new Promise<RoundResult>((resolve) => {
      round.resolve = resolve
      if (this.host.isClosed()) {
        resolve({ complete: false, collections: round.total, collectionsDone: round.done })
        return
      }
      // Answers may have arrived while requests were still being sent.
      for (const [name, needed] of round.waiting) {
        if ((this.answered.get(name) ?? 0) >= needed) {
          round.waiting.delete(name)
          round.done++
        }
      }
      this.rounds.add(round)
      this.emitProgress(round, true)
      this.finish(round)
    })
  }

  /** An answer (STEP2) for a collection arrived. */
  answer(name: string): void {
    const answered = (this.answered.get(name) ?? 0) + 1
    this.answered.set(name, answered)
    for (const round of this.rounds) {
      const needed = round.waiting.get(name)
      if (needed === undefined || answered < needed) continue
      round.waiting.delete(name)
      round.done++
      this.emitProgress(round, false, name)
      this.finish(round)
    }
  }

  /** The session closed: every round still waiting ends incomplete. */
  abort(): void {
    for (const round of this.rounds) round.resolve({ complete: false, collections: round.total, collectionsDone: round.done })
    this.rounds.clear()
  }

  private finish(round: Round): void {
    if (round.waiting.size > 0 || !this.rounds.has(round)) return
    this.rounds.delete(round)
    this.host.completed(this.host.now() - round.openedAt)
    round.resolve({ complete: true, collections: round.total, collectionsDone: round.done })
  }

  private emitProgress(round: Round, first: boolean, collection?: string): void {
    if (!round.progress || round.total === 0) return
    const now = this.host.now()
    const last = round.done === round.total
    if (!first && !last && now - round.lastProgressAt < PROGRESS_INTERVAL_MS) return
    round.lastProgressAt = now
    this.host.progress({ collectionsDone: round.done, collectionsTotal: round.total, bytesIn: this.host.bytesIn() - round.bytesInAtStart }, collection)
  }
}
