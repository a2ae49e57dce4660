import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { KitsyncError } from '../../src/core/errors.js'
import { DAY_MS, DEFAULT_HISTORY, type HistoryRetention } from '../../src/core/history-types.js'
import { nodeTagOf } from '../../src/core/hlc.js'
import { HistorySyncStore } from '../../src/daemon/history-sync-store.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { HistoryItem } from '../../src/protocol/history-frames.js'
import { historyKey, readCollectionChanges, readRecordHistory } from '../../src/store/history-rows.js'
import { openLevel, type BinaryLevel } from '../../src/store/level.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

/**
 * The entries a peer sends, stored on real LevelDB (daemon/history-sync-store.ts): entries a
 * real workspace derived on device A, read as the exchange reads them, stored on device B within
 * B's retention, with their time-order rows, never over an existing entry, and a hostile peer's
 * malformed entry refused with nothing of its frame stored.
 */

const A_ID = '12D3KooWHistSyncDevAAAA'
const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close()
})
afterAll(cleanup)

const T0 = 1_800_000_000_000
const enc = new TextEncoder()

async function level(): Promise<BinaryLevel> {
  const db = await openLevel(join(await makeTempDir('ks-histsync-'), 'db'))
  open.push(db)
  return db
}

/** Device A: 5 versions of notes/k, one a day, the last at T0 + 4 days; its entries as the exchange sends them. */
async function entriesOfA(): Promise<{ ids: string[]; items: HistoryItem[] }> {
  const time = { now: T0 }
  const ws = await LocalWorkspace.fromDatabase(await level(), { home: '', deviceId: A_ID, workspaceId: 'ws', name: 'a', version: '0' }, { now: () => time.now })
  open.push(ws)
  for (let i = 1; i <= 5; i++) {
    await ws.set('notes', 'k', { text: `v${i}` })
    time.now += DAY_MS
  }
  expect(await ws.history('notes', 'k')).toHaveLength(5) // also: the rows are written
  const a = new HistorySyncStore({ store: ws.store, retentionOf: () => DEFAULT_HISTORY, deviceId: A_ID, now: () => time.now })
  const ids = await a.items('notes', 0)
  return { ids, items: await a.entries('notes', ids) }
}

function deviceB(db: BinaryLevel, retention: Partial<HistoryRetention> = {}, now = T0 + 5 * DAY_MS): HistorySyncStore {
  return new HistorySyncStore({
    store: { db, batch: (ops) => db.batch(ops) },
    retentionOf: () => ({ ...DEFAULT_HISTORY, ...retention }),
    deviceId: 'B',
    now: () => now,
  })
}

async function refused(p: Promise<unknown>): Promise<KitsyncError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(KitsyncError)
  expect((err as KitsyncError).code).toBe('PROTOCOL_ERROR')
  return err as KitsyncError
}

describe('history entries from a peer, on LevelDB', () => {
  it('stores every entry within retention with its time-order row, and lists them as A wrote them', async () => {
    const { ids, items } = await entriesOfA()
    expect(ids).toHaveLength(5)
    const db = await level()
    const b = deviceB(db)
    expect(await b.store('notes', items, 'peerA')).toBe(5)
    const { versions } = await readRecordHistory(db, 'notes', 'k')
    expect(versions.map((v) => v.v)).toEqual([5, 4, 3, 2, 1].map((i) => ({ text: `v${i}` })))
    expect(versions.every((v) => v.device === nodeTagOf(A_ID))).toBe(true)
    // The c! index matches the h! entries one for one.
    expect((await readCollectionChanges(db, 'notes', 0, 100)).map((c) => c.stamp)).toEqual(versions.map((v) => v.stamp))
    // Again: nothing new.
    expect(await b.store('notes', items, 'peerA')).toBe(0)
    expect(await b.items('notes', 0)).toEqual(ids)
  })

  it('skips entries older than its days on arrival, and keeps the newest COUNT of a record after it', async () => {
    const { items } = await entriesOfA()
    const byDays = await level()
    // Now is T0 + 5 days: 3 days keeps the versions of days 2, 3 and 4.
    expect(await deviceB(byDays, { days: 3 }).store('notes', items, 'peerA')).toBe(3)
    expect((await readRecordHistory(byDays, 'notes', 'k')).versions.map((v) => v.v)).toEqual([{ text: 'v5' }, { text: 'v4' }, { text: 'v3' }])
    expect(await readCollectionChanges(byDays, 'notes', 0, 100)).toHaveLength(3)
    const byCount = await level()
    await deviceB(byCount, { count: 2 }).store('notes', items, 'peerA')
    expect((await readRecordHistory(byCount, 'notes', 'k')).versions.map((v) => v.v)).toEqual([{ text: 'v5' }, { text: 'v4' }])
    expect(await readCollectionChanges(byCount, 'notes', 0, 100)).toHaveLength(2)
    // History off: nothing.
    const off = await level()
    expect(await deviceB(off, { off: true }).store('notes', items, 'peerA')).toBe(0)
    expect(await deviceB(off, { off: true }).since('notes')).toBeUndefined()
    expect(await off.keys().all()).toEqual([])
  })

  it('never overwrites an entry it has', async () => {
    const { items } = await entriesOfA()
    const db = await level()
    const b = deviceB(db)
    const first = items[0] as HistoryItem
    await b.store('notes', [first], 'peerA')
    const before = await db.get(historyKey('notes', 'k', first.id.split('\0')[1] as string))
    const altered = JSON.parse(new TextDecoder().decode(first.entry)) as { v: unknown }
    altered.v = { text: 'rewritten' }
    expect(await b.store('notes', [{ id: first.id, entry: enc.encode(JSON.stringify(altered)) }], 'peerA')).toBe(0)
    expect(await db.get(historyKey('notes', 'k', first.id.split('\0')[1] as string))).toEqual(before)
  })

  it.each([
    ['not JSON', (e: Record<string, unknown>) => e, () => enc.encode('{not json')],
    ['another device than the stamp names', (e: Record<string, unknown>) => ({ ...e, device: 'intruder' })],
    ['a time other than the stamp’s', (e: Record<string, unknown>) => ({ ...e, time: (e.time as number) + 1 })],
    ['an unknown field', (e: Record<string, unknown>) => ({ ...e, evil: true })],
    ['fields that are not names', (e: Record<string, unknown>) => ({ ...e, fields: [1] })],
    ['a delete with a value', (e: Record<string, unknown>) => ({ ...e, d: 1 })],
    ['an array', () => [1, 2]],
  ])('refuses %s with PROTOCOL_ERROR and stores nothing of the frame', async (_what, change, raw?: () => Uint8Array) => {
    const { items } = await entriesOfA()
    const db = await level()
    const bad = items[2] as HistoryItem
    const entry = raw?.() ?? enc.encode(JSON.stringify(change(JSON.parse(new TextDecoder().decode(bad.entry)) as Record<string, unknown>)))
    const err = await refused(deviceB(db).store('notes', [items[0] as HistoryItem, { id: bad.id, entry }, items[4] as HistoryItem], 'peerA'))
    expect(err.message).toMatch(/^invalid history entry from peerA for notes\//)
    expect(await db.keys().all()).toEqual([])
  })

  it('refuses an entry stamped more than a day ahead, or under an invalid key', async () => {
    const { items } = await entriesOfA()
    const db = await level()
    const first = items[0] as HistoryItem
    const stamp = first.id.split('\0')[1] as string
    const future = (T0 + 10 * DAY_MS).toString(36).padStart(9, '0') + stamp.slice(9)
    const e = JSON.parse(new TextDecoder().decode(first.entry)) as Record<string, unknown>
    await refused(deviceB(db).store('notes', [{ id: `k\0${future}`, entry: enc.encode(JSON.stringify({ ...e, time: T0 + 10 * DAY_MS })) }], 'peerA'))
    await refused(deviceB(db).store('notes', [{ id: `\0${stamp}`, entry: first.entry }], 'peerA'))
    expect(await db.keys().all()).toEqual([])
  })
})
