import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { SyncStep } from '../../src/protocol/sync-frames.js'
import { ExchangeRounds, PROGRESS_INTERVAL_MS, type RoundProgress } from '../../src/sync/exchange-rounds.js'
import { SessionInterest } from '../../src/sync/session-interest.js'
import { READ_AHEAD_MS, ReadAhead, storedAnswer } from '../../src/sync/stored-state.js'
import { FrameBudget } from '../../src/sync/sync-limits.js'
import { DIFF_FROM_DOC_AT, mergeInGroups, UpdateOutbox, type OutboxHost } from '../../src/sync/update-outbox.js'

/** The parts of a sync session, each on its own with a fake of what it needs from the session. */

function roundsFixture(): {
  rounds: ExchangeRounds
  progress: RoundProgress[]
  completed: () => number
  clock: { now: number; bytesIn: number; closed: boolean }
} {
  const clock = { now: 0, bytesIn: 0, closed: false }
  const progress: RoundProgress[] = []
  let completed = 0
  const rounds = new ExchangeRounds({
    now: () => clock.now,
    bytesIn: () => clock.bytesIn,
    isClosed: () => clock.closed,
    progress: (p) => progress.push(p),
    completed: () => completed++,
  })
  return { rounds, progress, completed: () => completed, clock }
}

describe('ExchangeRounds', () => {
  it('completes a round once every collection asked is answered, counting answers that came before it was settled', async () => {
    const { rounds, completed } = roundsFixture()
    const round = rounds.open(false)
    rounds.requested('a', round)
    rounds.requested('b', round)
    rounds.answer('a')
    const result = rounds.settle(round)
    expect(completed()).toBe(0)
    rounds.answer('b')
    await expect(result).resolves.toEqual({ complete: true, collections: 2, collectionsDone: 2 })
    expect(completed()).toBe(1)
  })

  it('matches answers to requests by count: a collection asked again needs its second answer', async () => {
    const { rounds } = roundsFixture()
    rounds.requested('a')
    const round = rounds.open(false)
    rounds.requested('a', round)
    let done = false
    const result = rounds.settle(round).then((r) => {
      done = true
      return r
    })
    rounds.answer('a') // the answer to the request made before the round
    await Promise.resolve()
    expect(done).toBe(false)
    rounds.answer('a')
    await expect(result).resolves.toEqual({ complete: true, collections: 1, collectionsDone: 1 })
  })

  it('ends the rounds still waiting as incomplete when the session closes, and a round settled after that at once', async () => {
    const { rounds, clock, completed } = roundsFixture()
    const round = rounds.open(false)
    rounds.requested('a', round)
    rounds.requested('b', round)
    const result = rounds.settle(round)
    rounds.answer('a')
    rounds.abort()
    await expect(result).resolves.toEqual({ complete: false, collections: 2, collectionsDone: 1 })
    clock.closed = true
    const late = rounds.open(false)
    rounds.requested('c', late)
    await expect(rounds.settle(late)).resolves.toEqual({ complete: false, collections: 1, collectionsDone: 0 })
    expect(completed()).toBe(0)
  })

  it('reports progress at the start and the end, and in between at most once per interval, with the bytes since the round opened', async () => {
    const { rounds, progress, clock } = roundsFixture()
    clock.bytesIn = 1000
    const round = rounds.open(true)
    for (const name of ['a', 'b', 'c', 'd']) rounds.requested(name, round)
    const result = rounds.settle(round)
    clock.bytesIn = 1500
    rounds.answer('a') // within the interval of the first report: not reported
    clock.now = PROGRESS_INTERVAL_MS
    rounds.answer('b')
    rounds.answer('c') // again within the interval
    rounds.answer('d') // the last: always reported
    await result
    expect(progress).toEqual([
      { collectionsDone: 0, collectionsTotal: 4, bytesIn: 0 },
      { collectionsDone: 2, collectionsTotal: 4, bytesIn: 500 },
      { collectionsDone: 4, collectionsTotal: 4, bytesIn: 500 },
    ])
  })

  it('reports nothing for a round opened without progress', async () => {
    const { rounds, progress } = roundsFixture()
    const round = rounds.open(false)
    rounds.requested('a', round)
    const result = rounds.settle(round)
    rounds.answer('a')
    await result
    expect(progress).toEqual([])
  })
})

describe('SessionInterest', () => {
  it("shares what the host syncs with the peer and the peer's interest wants; the internal collections always", () => {
    const interest = new SessionInterest((name) => name !== 'private')
    expect(interest.sharedNames(['notes', 'private', 'alerts'])).toEqual(['notes', 'alerts'])
    interest.peerWants([{ include: true, pattern: 'notes' }])
    expect(interest.sharedNames(['notes', 'private', 'alerts', '_members'])).toEqual(['notes', '_members'])
  })

  it('forgets that a collection was exchanged once it is no longer shared, so it is asked for again later', () => {
    const interest = new SessionInterest(() => true)
    interest.exchanged.add('notes')
    interest.exchanged.add('alerts')
    interest.peerWants([{ include: true, pattern: 'notes' }])
    interest.forgetUnshared()
    expect([...interest.exchanged]).toEqual(['notes'])
  })

  it('counts what the peer named among the shared collections', () => {
    const interest = new SessionInterest((name) => name !== 'private')
    interest.peerNamed.add('theirs')
    interest.peerNamed.add('private')
    expect(interest.allShared(['notes', 'theirs'])).toEqual(['notes', 'theirs'])
  })

  it('says an interest changed only when it differs from the one last sent', () => {
    const interest = new SessionInterest(() => true)
    const rules = [{ include: true, pattern: 'notes' }]
    expect(interest.changed(rules)).toBe(true)
    expect(interest.changed([...rules])).toBe(false)
    expect(interest.changed([{ include: false, pattern: 'notes' }])).toBe(true)
  })
})

function outboxFixture(overrides: Partial<OutboxHost> = {}): {
  outbox: UpdateOutbox
  sent: { collection: string; payload: Uint8Array }[]
  ticks: (() => void)[]
  state: { ready: boolean; closed: boolean; overflowed: number; flushed: number }
} {
  const sent: { collection: string; payload: Uint8Array }[] = []
  const ticks: (() => void)[] = []
  const state = { ready: true, closed: false, overflowed: 0, flushed: 0 }
  const outbox = new UpdateOutbox({
    maxBufferedBytes: 1_000_000,
    schedule: (fn) => ticks.push(fn),
    bufferedBytes: () => 0,
    isReady: () => state.ready,
    isClosed: () => state.closed,
    shares: () => true,
    loadedDoc: () => undefined,
    send: (collection, payload) => sent.push({ collection, payload }),
    overflow: () => state.overflowed++,
    flushed: () => state.flushed++,
    ...overrides,
  })
  return { outbox, sent, ticks, state }
}

function updatesOf(count: number): { doc: Y.Doc; updates: Uint8Array[]; before: Map<number, number> } {
  const doc = new Y.Doc()
  const before = Y.decodeStateVector(Y.encodeStateVector(doc))
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < count; i++) doc.getMap('m').set(`k${i}`, i)
  return { doc, updates, before }
}

/** The map a document holds after `base` (what the receiver already has), then `update`. */
function contentOf(update: Uint8Array, base: Uint8Array[] = []): unknown {
  const doc = new Y.Doc()
  for (const u of base) Y.applyUpdate(doc, u)
  Y.applyUpdate(doc, update)
  return doc.getMap('m').toJSON()
}

describe('UpdateOutbox', () => {
  it('sends the first update of a tick at once and merges the rest of the tick into one update per collection', () => {
    const { outbox, sent, ticks } = outboxFixture()
    const { updates } = updatesOf(4)
    for (const u of updates) outbox.enqueue('notes', u)
    expect(sent).toHaveLength(1)
    for (const tick of ticks.splice(0)) tick()
    expect(sent).toHaveLength(2)
    expect(contentOf(sent[1]?.payload as Uint8Array, [sent[0]?.payload as Uint8Array])).toEqual({ k0: 0, k1: 1, k2: 2, k3: 3 })
    expect(contentOf(sent[0]?.payload as Uint8Array)).toEqual({ k0: 0 })
    expect(outbox.bytes).toBe(0)
  })

  it('holds updates until the peer is ready, then sends the collection with the fewest updates first', () => {
    const { outbox, sent, ticks, state } = outboxFixture()
    state.ready = false
    for (const u of updatesOf(3).updates) outbox.enqueue('import', u)
    for (const u of updatesOf(1).updates) outbox.enqueue('alert', u)
    expect(ticks).toHaveLength(0)
    state.ready = true
    outbox.scheduleFlush()
    for (const tick of ticks.splice(0)) tick()
    expect(sent.map((s) => s.collection)).toEqual(['alert', 'import'])
  })

  it('from DIFF_FROM_DOC_AT updates encodes what the document gained instead of merging them', () => {
    const { doc, updates, before } = updatesOf(DIFF_FROM_DOC_AT)
    const queued = [...updates]
    // A change the outbox was not given (one the peer sent, say): the gain holds it, a merge would not.
    doc.getMap('m').set('extra', true)
    const { outbox, sent, ticks, state } = outboxFixture({ loadedDoc: () => doc })
    state.ready = false
    for (const u of queued) outbox.enqueue('notes', u, before)
    state.ready = true
    outbox.scheduleFlush()
    for (const tick of ticks.splice(0)) tick()
    expect(sent).toHaveLength(1)
    expect(sent[0]?.payload).toEqual(Y.encodeStateAsUpdate(doc, Y.encodeStateVector(before)))
    expect(contentOf(sent[0]?.payload as Uint8Array)).toEqual(doc.getMap('m').toJSON())
  })

  it('reports an overflow once the unsent bytes pass the limit, and drops what a collection no longer shared queued', () => {
    const { updates } = updatesOf(3)
    const limit = (updates[0]?.byteLength ?? 0) + 1
    const { outbox, state } = outboxFixture({ maxBufferedBytes: limit })
    state.ready = false
    outbox.enqueue('notes', updates[0] as Uint8Array)
    expect(state.overflowed).toBe(0)
    outbox.enqueue('notes', updates[1] as Uint8Array)
    expect(state.overflowed).toBe(1)

    const shared = outboxFixture({ shares: (c) => c !== 'private' })
    shared.state.ready = false
    for (const u of updates) shared.outbox.enqueue('private', u)
    shared.outbox.enqueue('notes', updates[0] as Uint8Array)
    shared.state.ready = true
    shared.outbox.scheduleFlush()
    for (const tick of shared.ticks.splice(0)) tick()
    expect(shared.sent.map((s) => s.collection)).toEqual(['notes'])
    expect(shared.state.flushed).toBe(1)
  })

  it('mergeInGroups gives one update holding all of many', () => {
    const { doc, updates } = updatesOf(100)
    expect(contentOf(mergeInGroups(updates))).toEqual(doc.getMap('m').toJSON())
    expect(mergeInGroups([])).toEqual(new Uint8Array([0, 0]))
  })
})

describe('stored state', () => {
  it('answers with a lone stored update as the STEP2, and with more as the first then the rest merged in the STEP2', () => {
    const { updates } = updatesOf(3)
    const [first, ...rest] = updates as [Uint8Array, ...Uint8Array[]]
    expect(storedAnswer([first])).toEqual([{ step: SyncStep.STEP2, payload: first }])
    const answer = storedAnswer([first, ...rest])
    expect(answer.map((a) => a.step)).toEqual([SyncStep.UPDATE, SyncStep.STEP2])
    expect(answer[0]?.payload).toBe(first)
    expect(contentOf(answer[1]?.payload as Uint8Array, [first])).toEqual({ k0: 0, k1: 1, k2: 2 })
  })

  it('hands the reads for a new device out once, without those of a collection changed since', () => {
    const ahead = new ReadAhead()
    const read = (name: string): Promise<Uint8Array[]> => Promise.resolve([new TextEncoder().encode(name)])
    ahead.start('dev', ['notes', 'alerts'], read)
    ahead.changed('alerts')
    expect([...(ahead.take('dev')?.keys() ?? [])]).toEqual(['notes'])
    expect(ahead.take('dev')).toBeUndefined()
    expect(READ_AHEAD_MS).toBeGreaterThan(0)
  })
})

describe('FrameBudget', () => {
  it('allows a burst, then the rate, per peer', () => {
    let now = 0
    const budget = new FrameBudget({ framesPerSecond: 10, frameBurst: 3 }, () => now)
    expect([budget.take('a'), budget.take('a'), budget.take('a'), budget.take('a')]).toEqual([true, true, true, false])
    expect(budget.take('b')).toBe(true)
    now = 100 // a tenth of a second: one more frame
    expect([budget.take('a'), budget.take('a')]).toEqual([true, false])
  })
})
