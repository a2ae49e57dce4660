import { join } from 'node:path'
import * as Y from 'yjs'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_HISTORY } from '../../src/core/history-types.js'
import { formatHlc } from '../../src/core/hlc.js'
import type { KitsyncError } from '../../src/core/errors.js'
import { HistorySyncStore } from '../../src/daemon/history-sync-store.js'
import { decodeHistoryFrame, encodeHistoryFrame, HistoryFrameType, isHistoryFrame, type HistoryFrame } from '../../src/protocol/history-frames.js'
import { encodeFrame, FrameType, SYNC_PROTOCOL_VERSION, SyncStep } from '../../src/protocol/sync-frames.js'
import { versionOps } from '../../src/store/history-rows.js'
import { openLevel, type BinaryLevel } from '../../src/store/level.js'
import { SyncEngine } from '../../src/sync/sync-engine.js'
import type { SyncHost } from '../../src/sync/sync-host.js'
import { cleanup, makeTempDir, waitUntil } from '../helpers/cli.js'

/**
 * History frames on a real SyncSession (sync-engine.ts, sync-session.ts) with entries on LevelDB:
 * the peer's frames are fed one by one as the transport would, and what the session sends and
 * stores is read back. A hostile peer's malformed entry closes the session with PROTOCOL_ERROR
 * and nothing is stored; an untrusted peer is told nothing and nothing it sends is taken.
 */

const dbs: BinaryLevel[] = []
afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close()
})
afterAll(cleanup)

const NOW = 1_800_000_000_000
const enc = new TextEncoder()

async function device(options: { trusted?: boolean; entries?: number } = {}) {
  const db = await openLevel(join(await makeTempDir('ks-histsession-'), 'db'))
  dbs.push(db)
  const ops = []
  for (let i = 0; i < (options.entries ?? 0); i++) {
    const stamp = formatHlc({ ms: NOW - 1000 * i, counter: 0, node: 'devA' })
    ops.push(...versionOps('notes', `k${i % 7}`, stamp, { v: { i }, device: 'devA', fields: ['i'], time: NOW - 1000 * i }))
  }
  if (ops.length > 0) await db.batch(ops)
  const trusted = options.trusted ?? true
  const host: SyncHost = {
    workspaceId: 'ws',
    collectionNames: () => ['notes'],
    openDoc: () => Promise.resolve(new Y.Doc()),
    shares: (_peer, collection) => trusted || collection.startsWith('_'),
    accepts: () => trusted,
  }
  const history = new HistorySyncStore({ store: { db, batch: (o) => db.batch(o) }, retentionOf: () => DEFAULT_HISTORY, deviceId: 'A', now: () => NOW })
  const engine = new SyncEngine(host, { history, now: () => NOW })
  const sent: HistoryFrame[] = []
  let closed: KitsyncError | undefined | 'open' = 'open'
  // The peer's id sorts after 'A': this device opens the reconciliation.
  const session = engine.attach({
    peerId: 'peerB',
    bufferedBytes: 0,
    send: (frame) => {
      const bytes = frame instanceof Uint8Array ? frame : Buffer.concat(frame as Uint8Array[])
      if (isHistoryFrame(bytes)) sent.push(decodeHistoryFrame(bytes))
    },
    close: (error) => {
      closed = error
    },
  })
  const feed = async (bytes: Uint8Array): Promise<void> => {
    session.receive(bytes)
    await session.idle()
  }
  await feed(encodeFrame({ type: FrameType.HELLO, version: SYNC_PROTOCOL_VERSION, workspaceId: 'ws', collections: ['notes'] }))
  const openedAtHello = sent.length
  // The peer's answer to this device's STEP1 (nothing new): the catch-up of notes is done.
  await feed(encodeFrame({ type: FrameType.SYNC, collection: 'notes', step: SyncStep.STEP2, payload: Uint8Array.of(0, 0) }))
  return { db, sent, feed, closed: () => closed, session, openedAtHello }
}

const item = (id: string, entry: unknown) => ({ id, entry: enc.encode(JSON.stringify(entry)) })
const hKeys = async (db: BinaryLevel) => (await db.keys().all()).filter((k) => k.startsWith('h!') || k.startsWith('c!'))

describe('history frames on a sync session', () => {
  it('once the peer answered its STEP1, opens with one fingerprint of its entries and answers an empty peer with all of them', async () => {
    const d = await device({ entries: 20 })
    expect(d.openedAtHello).toBe(0)
    await waitUntil(async () => (d.sent.length > 0 ? true : undefined), 5000, 'the opening HISTORY_RANGES')
    expect(d.sent).toHaveLength(1)
    const opening = d.sent[0] as Extract<HistoryFrame, { type: 20 }>
    expect(opening).toMatchObject({ type: HistoryFrameType.HISTORY_RANGES, collection: 'notes', lower: '', ranges: [{ mode: 1, count: 20 }] })
    // The peer holds none: its fingerprint of count 0 over everything.
    await d.feed(encodeHistoryFrame({ ...opening, ranges: [{ mode: 1, upper: undefined, count: 0, fingerprint: new Uint8Array(16) }] }))
    const items = d.sent.filter((f) => f.type === HistoryFrameType.HISTORY_ITEMS).flatMap((f) => f.items)
    expect(items).toHaveLength(20)
    expect(d.closed()).toBe('open')
  })

  it('a malformed entry from the peer closes the session with PROTOCOL_ERROR and stores nothing of its frame', async () => {
    const d = await device()
    const stamp = formatHlc({ ms: NOW - 5000, counter: 0, node: 'devB' })
    const good = item(`k\0${stamp}`, { v: 1, device: 'devB', fields: [], time: NOW - 5000 })
    const stamp2 = formatHlc({ ms: NOW - 4000, counter: 0, node: 'devB' })
    const forged = item(`k\0${stamp2}`, { v: 2, device: 'devA', fields: [], time: NOW - 4000 })
    await d.feed(encodeHistoryFrame({ type: HistoryFrameType.HISTORY_ITEMS, collection: 'notes', items: [good, forged] }))
    const closed = d.closed()
    expect(closed).not.toBe('open')
    expect((closed as KitsyncError).code).toBe('PROTOCOL_ERROR')
    expect((closed as KitsyncError).message).toContain("device is not the stamp's writer")
    expect(await hKeys(d.db)).toEqual([])
    // A well-formed one on a new session is stored with its time-order row.
    const again = await device()
    await again.feed(encodeHistoryFrame({ type: HistoryFrameType.HISTORY_ITEMS, collection: 'notes', items: [good] }))
    expect(await hKeys(again.db)).toEqual([`c!notes!${stamp}\0k`, `h!notes!k\0${stamp}`])
  })

  it('an untrusted peer is not offered history, its requests get nothing, and nothing it sends is stored', async () => {
    const d = await device({ trusted: false, entries: 5 })
    expect(d.sent).toEqual([])
    await d.feed(encodeHistoryFrame({ type: HistoryFrameType.HISTORY_RANGES, collection: 'notes', since: 0, lower: '', ranges: [] }))
    await d.feed(
      encodeHistoryFrame({ type: HistoryFrameType.HISTORY_WANT, collection: 'notes', ids: [`k0\0${formatHlc({ ms: NOW, counter: 0, node: 'devA' })}`] }),
    )
    const stamp = formatHlc({ ms: NOW - 5000, counter: 0, node: 'devB' })
    await d.feed(
      encodeHistoryFrame({
        type: HistoryFrameType.HISTORY_ITEMS,
        collection: 'notes',
        items: [item(`x\0${stamp}`, { device: 'devB', fields: [], time: NOW - 5000 })],
      }),
    )
    expect(d.sent).toEqual([])
    expect((await hKeys(d.db)).filter((k) => k.includes('x\0'))).toEqual([])
    // Internal collections are never reconciled, even with a trusted peer.
    const t = await device({ entries: 1 })
    await t.feed(
      encodeHistoryFrame({ type: HistoryFrameType.HISTORY_WANT, collection: '_members', ids: [`k0\0${formatHlc({ ms: NOW, counter: 0, node: 'devA' })}`] }),
    )
    expect(t.sent.filter((f) => f.collection === '_members')).toEqual([])
  })

  it('a history frame before the hello is a protocol error', async () => {
    const db = await openLevel(join(await makeTempDir('ks-histsession-'), 'db'))
    dbs.push(db)
    const host: SyncHost = { workspaceId: 'ws', collectionNames: () => [], openDoc: () => Promise.resolve(new Y.Doc()) }
    const history = new HistorySyncStore({ store: { db, batch: (o) => db.batch(o) }, retentionOf: () => DEFAULT_HISTORY, deviceId: 'A' })
    let closed: KitsyncError | undefined
    const session = new SyncEngine(host, { history }).attach({ peerId: 'p', bufferedBytes: 0, send: () => undefined, close: (e) => (closed = e) })
    session.receive(encodeHistoryFrame({ type: HistoryFrameType.HISTORY_WANT, collection: 'notes', ids: [] }))
    await session.idle()
    expect(closed?.code).toBe('PROTOCOL_ERROR')
  })
})
