import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { countedDevices, deviceLimitOf, fullWarning } from '../../src/core/device-limit.js'
import { deviceLabel, seenText, shortId } from '../../src/cli/device-label.js'
import { parseDuration } from '../../src/cli/commands/sync.js'
import { PendingLedger, storedClocks } from '../../src/sync/pending-ledger.js'
import { deviceState, overallState } from '../../src/sync/sync-state.js'

/** A document whose writes the ledger counts as this device's own (as SyncEngine.track does). */
function ownDoc(ledger: PendingLedger, name: string): Y.Doc {
  const doc = new Y.Doc()
  doc.on('update', (_u: Uint8Array, _o: unknown, _d: Y.Doc, tr: Y.Transaction) => {
    if (tr.local) ledger.localWrite(name, doc.clientID, tr.afterState.get(doc.clientID) ?? 0)
  })
  return doc
}

describe('PendingLedger', () => {
  it('counts own writes a device lacks, drops them once reported or delivered, and survives a snapshot', () => {
    const ledger = new PendingLedger()
    const doc = ownDoc(ledger, 'notes')
    expect(ledger.pending('B')).toBe(0)
    doc.getMap('r').set('a', 1)
    const atOne = Y.encodeStateVector(doc)
    doc.getMap('r').set('b', 2)
    expect(ledger.pending('B')).toBe(2)
    expect(ledger.pendingByCollection('B')).toEqual({ notes: 2 })
    // B reports a state vector holding the first write only.
    const peer = new Y.Doc()
    Y.applyUpdate(peer, Y.encodeStateAsUpdate(doc))
    const half = new Map([[doc.clientID, 1]])
    ledger.reported('B', 'notes', half)
    expect(ledger.pending('B')).toBe(1)
    // An update sent to B holds the rest.
    const before = Y.encodeStateVector(doc)
    doc.getMap('r').set('c', 3)
    expect(ledger.pending('B')).toBe(2)
    // A diff that starts past what B holds (a gap) is not counted; one that follows on is.
    ledger.delivered('B', 'notes', Y.encodeStateAsUpdate(doc, before))
    expect(ledger.pending('B')).toBe(2)
    ledger.delivered('B', 'notes', Y.encodeStateAsUpdate(doc, atOne))
    expect(ledger.pending('B')).toBe(0)
    // Another device that never reported lacks all three; a collection not shared with it is not counted.
    expect(ledger.pending('C')).toBe(3)
    expect(ledger.pending('C', (c) => c !== 'notes')).toBe(0)
    // Others' writes are not own writes.
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(peer))
    const other = new Y.Doc()
    other.getMap('r').set('z', 1)
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(other))
    expect(ledger.pending('C')).toBe(3)
    // Persisted and restored (a restart): the same counts.
    expect(ledger.takeDirty().sort()).toEqual(['', 'B'])
    const restored = new PendingLedger()
    restored.restore(ledger.ownSnapshot(), { B: ledger.peerSnapshot('B'), C: 'garbage' })
    expect(restored.pending('B')).toBe(0)
    expect(restored.pending('C')).toBe(3)
    expect(restored.takeDirty()).toEqual([])
    // A late report (read before the update went out) does not undo what was delivered.
    restored.reported('B', 'notes', new Map([[doc.clientID, 1]]))
    expect(restored.pending('B')).toBe(0)
  })

  it('says when a new client writes (once), and recounts lagging own clocks from stored updates, own clients only', () => {
    const ledger = new PendingLedger()
    let news = 0
    ledger.onNewClient = () => news++
    const doc = ownDoc(ledger, 'notes')
    doc.getMap('r').set('a', 1)
    doc.getMap('r').set('b', 2)
    expect(news).toBe(1)
    // Saved after the first write only (as a kill -9 leaves it); the document went on to clock 2.
    const saved = new PendingLedger()
    saved.onNewClient = () => news++
    saved.restore({ notes: [[doc.clientID, 1]] }, {})
    expect(news).toBe(1) // a restore is not a new client
    expect(saved.pending('B')).toBe(1)
    const other = new Y.Doc() // another device's writes, merged here
    other.getMap('r').set('c', 3)
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(other))
    // As stored: the updates one by one (the store's log), not merged.
    const stored = storedClocks([Y.encodeStateAsUpdate(other), Y.encodeStateAsUpdate(doc, Y.encodeStateVector(other))])
    expect(stored).toEqual(Y.decodeStateVector(Y.encodeStateVector(doc)))
    expect(saved.recount('notes', stored)).toBe(true)
    expect(saved.pending('B')).toBe(2)
    expect(saved.takeDirty()).toEqual([''])
    expect(saved.recount('notes', stored)).toBe(false)
    expect(saved.recount('todo', stored)).toBe(false)
    expect(saved.ownCollections()).toEqual(['notes'])
  })
})

describe('sync state', () => {
  const session = { ready: true, caughtUp: true, unsentBytes: 0 }
  it('per device: paused wins, then offline/error without a session, syncing until caught up and sent', () => {
    expect(deviceState({ paused: true, session, exchanging: false, failed: true })).toBe('paused')
    expect(deviceState({ paused: false, session: undefined, exchanging: false, failed: false })).toBe('offline')
    expect(deviceState({ paused: false, session: undefined, exchanging: false, failed: true })).toBe('error')
    expect(deviceState({ paused: false, session: { ...session, ready: false }, exchanging: false, failed: false })).toBe('syncing')
    expect(deviceState({ paused: false, session: { ...session, caughtUp: false }, exchanging: false, failed: false })).toBe('syncing')
    expect(deviceState({ paused: false, session: { ...session, unsentBytes: 10 }, exchanging: false, failed: false })).toBe('syncing')
    expect(deviceState({ paused: false, session, exchanging: true, failed: false })).toBe('syncing')
    expect(deviceState({ paused: false, session, exchanging: false, failed: true })).toBe('idle')
  })
  it('overall: paused, then error, syncing, idle, offline', () => {
    expect(overallState(true, ['error'])).toBe('paused')
    expect(overallState(false, ['idle', 'error', 'syncing'])).toBe('error')
    expect(overallState(false, ['idle', 'syncing', 'offline'])).toBe('syncing')
    expect(overallState(false, ['offline', 'idle'])).toBe('idle')
    expect(overallState(false, ['offline', 'offline'])).toBe('offline')
    expect(overallState(false, [])).toBe('idle')
  })
})

describe('device limit, labels and durations', () => {
  it('counts every device not revoked, and warns only when full', () => {
    const devices = [
      { peerId: 'a', state: 'trusted' as const },
      { peerId: 'b', state: 'revoked' as const },
      { peerId: 'c', state: 'trusted' as const },
    ]
    expect(countedDevices(devices).map((d) => d.peerId)).toEqual(['a', 'c'])
    expect(countedDevices(devices, 'c').map((d) => d.peerId)).toEqual(['a'])
    expect(deviceLimitOf(undefined)).toBe(5)
    expect(deviceLimitOf({ maxDevices: 2 })).toBe(2)
    expect(fullWarning(1, 2)).toBeUndefined()
    expect(fullWarning(2, 2)).toContain('kitsync devices limit 3')
  })
  it('one short id length; names with it; the same last-seen text', () => {
    const id = '12D3KooWR8hLLQfkRv9vD48EG7ySDDxi1P44KfVcu3yJkA6wBHCF'
    expect(shortId(id)).toBe('…kA6wBHCF')
    expect(shortId('')).toBe('-')
    expect(deviceLabel(id, { [id]: 'phone' })).toBe('phone (…kA6wBHCF)')
    expect(deviceLabel(id, {})).toBe('…kA6wBHCF')
    expect(seenText(Date.UTC(2026, 11, 7, 14, 3, 32), Date.UTC(2026, 11, 7, 14, 3, 44))).toBe('2026-12-07 14:03:32 (12s ago)')
    expect(seenText(undefined)).toBe('-')
  })
  it('parses --for durations and refuses others', () => {
    expect(parseDuration('30s')).toBe(30_000)
    expect(parseDuration('10m')).toBe(600_000)
    expect(parseDuration('2h')).toBe(7_200_000)
    expect(parseDuration('5')).toBe(5000)
    for (const bad of ['0s', '10 minutes', '-1m', '721h', '']) expect(() => parseDuration(bad)).toThrow(/INVALID_ARGUMENT|expected a duration/)
  })
})
