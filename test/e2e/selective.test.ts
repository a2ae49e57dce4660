import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { Workspace } from '../../dist/index.js'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/** Selective sync, sync now, stats and reset with real `kitsync` processes on loopback. */

const SYNC_TIMEOUT = 20_000
const { peer, client, invite, forget } = devicesOfTest()

async function until(ws: Workspace, collection: string, key: string, expected: unknown): Promise<void> {
  await waitUntil(
    async () => {
      const v = await ws.get(collection, key).catch(() => undefined)
      return isDeepStrictEqual(v, expected) ? true : undefined
    },
    SYNC_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)}`,
  )
}

interface Counters {
  sessions: number
  syncs: number
  bytesIn: number
  bytesOut: number
  updatesApplied: number
}
interface Stats {
  live: boolean
  since: number
  totals: Counters
  peers: Record<string, Counters>
  collections: Record<string, Counters>
}
interface SyncNow {
  peers: {
    peerId: string
    name: string
    reached: boolean
    complete: boolean
    collections: number
    bytesIn: number
    bytesOut: number
    error?: { code: string }
  }[]
}

describe('selective sync between real peers', () => {
  it('B holds only its items; items add and fetch pull more at run time; sync now, stats and reset report and keep data', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    const pa = await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    await kitsyncOk(hc, ['join', await invite(ha), '--name', 'sea', ...NET]) // never runs: unreachable for sync now
    const pb = await peer(hb, ['--items', 'watchlists'])
    const a = await client(ha)
    const b = await client(hb)
    await a.set('watchlists', 'tech', { symbols: ['AAPL'] })
    await a.set('alerts', 'btc', { symbol: 'X', above: 100000 })
    await a.set('journal', 'd1', 'bought AAPL')
    await a.set('drawings.AAPL-1D', 'line1', { from: 1, to: 2 })
    await until(b, 'watchlists', 'tech', { symbols: ['AAPL'] })
    // a later write to a collection B does not hold, then one it holds: only the latter arrives
    await a.set('alerts', 'eth', { symbol: 'X', above: 5000 })
    await a.set('watchlists', 'energy', { symbols: ['XOM'] })
    await until(b, 'watchlists', 'energy', { symbols: ['XOM'] })
    expect((await b.list()).map((c) => c.name)).toEqual(['watchlists'])
    expect(await kitsyncJson(hb, ['items'])).toMatchObject({ items: ['watchlists'], localOnly: [] })
    const config = await kitsyncJson<{ items: string[] }>(hb, ['items', 'show'])
    expect(config.items).toEqual(['watchlists'])

    // at run time, through the running peer
    await kitsyncOk(hb, ['items', 'add', 'alerts'])
    await until(b, 'alerts', 'eth', { symbol: 'X', above: 5000 })
    expect(await b.getAll('alerts')).toEqual({ btc: { symbol: 'X', above: 100000 }, eth: { symbol: 'X', above: 5000 } })
    expect((await b.list()).map((c) => c.name)).toEqual(['alerts', 'watchlists'])

    const fetched = await kitsyncJson<{ present: boolean; records: number; added: boolean; peers: { complete: boolean }[] }>(hb, ['fetch', 'drawings.AAPL-1D'])
    expect(fetched).toMatchObject({ present: true, records: 1, added: true })
    expect(fetched.peers).toEqual([expect.objectContaining({ complete: true })])
    expect(await b.get('drawings.AAPL-1D', 'line1')).toEqual({ from: 1, to: 2 })
    expect((await b.list()).map((c) => c.name)).toEqual(['alerts', 'drawings.AAPL-1D', 'watchlists'])

    // sync now: A reached, C (never started) unreachable; progress reaches library clients
    const progress: { collectionsDone: number; collectionsTotal: number }[] = []
    b.on('sync:progress', (e) => progress.push(e))
    await b.info() // the event subscription is in place once this answers
    const deviceA = pa.started.deviceId
    const report = await kitsyncJson<SyncNow>(hb, ['sync', 'now', '--timeout', '10'])
    const toA = report.peers.find((p) => p.peerId === deviceA)
    expect(toA).toMatchObject({ reached: true, complete: true })
    expect(toA?.collections).toBeGreaterThanOrEqual(3)
    expect(toA?.bytesIn).toBeGreaterThan(0)
    expect(toA?.bytesOut).toBeGreaterThan(0)
    expect(report.peers.find((p) => p.name === 'sea')).toMatchObject({ reached: false, error: { code: 'PEER_UNREACHABLE' } })
    await waitUntil(
      async () => (progress.some((e) => e.collectionsDone === e.collectionsTotal && e.collectionsTotal >= 3) ? true : undefined),
      SYNC_TIMEOUT,
      'a sync:progress event',
    )

    // stats move after writes, and know nothing of the collection B never held
    const s1 = await kitsyncJson<Stats>(hb, ['stats'])
    expect(s1.live).toBe(true)
    expect(s1.peers[deviceA]?.updatesApplied).toBeGreaterThanOrEqual(4)
    expect(s1.collections.watchlists?.bytesIn).toBeGreaterThan(0)
    expect(s1.collections.journal).toBeUndefined()
    await a.set('watchlists', 'crypto', { symbols: ['BTC'] })
    await until(b, 'watchlists', 'crypto', { symbols: ['BTC'] })
    const s2 = await kitsyncJson<Stats>(hb, ['stats'])
    expect(s2.peers[deviceA]?.updatesApplied).toBeGreaterThan(s1.peers[deviceA]?.updatesApplied ?? Infinity)
    expect(s2.collections.watchlists?.bytesIn).toBeGreaterThan(s1.collections.watchlists?.bytesIn ?? Infinity)

    // the counters survive a restart (saved when the peer stops)
    await b.close()
    forget(b)
    await stopProc(pb.proc)
    forget(pb)
    const saved = await kitsyncJson<Stats>(hb, ['stats'])
    expect(saved.live).toBe(false)
    expect(saved.peers[deviceA]?.updatesApplied).toBe(s2.peers[deviceA]?.updatesApplied)
    expect(saved.totals.bytesIn).toBeGreaterThanOrEqual(s2.totals.bytesIn)
    // selective settings are kept in workspace.json: B still holds only its items after the restart
    expect((await kitsyncJson<{ name: string }[]>(hb, ['list'])).map((c) => c.name)).toEqual(['alerts', 'drawings.AAPL-1D', 'watchlists'])

    // reset asks first: "n" (or no answer) changes nothing
    const refused = await kitsync(hb, ['reset'], { input: 'n\n' })
    // the question goes to stderr (stdout stays machine-readable), the error line after it
    expect(refused.code, refused.stderr).toBe(6)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).toMatch(/Data, keys and device identity are kept\. \[y\/N\] kitsync: ABORTED: reset cancelled; nothing was changed\n$/)
    expect((await kitsyncJson<Stats>(hb, ['stats'])).totals.bytesIn).toBe(saved.totals.bytesIn)
    const before = await kitsyncJson<{ info: { deviceId: string } }>(hb, ['status'])
    const accepted = await kitsync(hb, ['reset'], { input: 'y\n' })
    expect(accepted.code, accepted.stderr).toBe(0)
    expect(accepted.stdout).toContain('sync state reset')
    const cleared = await kitsyncJson<Stats>(hb, ['stats'])
    expect(cleared.totals).toMatchObject({ sessions: 0, syncs: 0, bytesIn: 0, bytesOut: 0, updatesApplied: 0 })
    expect(cleared.peers).toEqual({})
    expect(await kitsyncJson(hb, ['get', 'watchlists', 'crypto'])).toEqual({ symbols: ['BTC'] })
    expect((await kitsyncJson<{ info: { deviceId: string } }>(hb, ['status'])).info.deviceId).toBe(before.info.deviceId)
    expect(before.info.deviceId).toBe(pb.started.deviceId)

    // with a running peer: reset restarts the sessions, and sync goes on
    await peer(hb)
    const b2 = await client(hb)
    await a.set('alerts', 'ada', { symbol: 'X', above: 1 })
    await until(b2, 'alerts', 'ada', { symbol: 'X', above: 1 }) // the session with A is up
    const r = await kitsyncJson<{ sessionsRestarted: number }>(hb, ['reset', '--yes'])
    expect(r.sessionsRestarted).toBe(1)
    await a.set('alerts', 'sol', { symbol: 'X', above: 200 })
    await until(b2, 'alerts', 'sol', { symbol: 'X', above: 200 })
    const afterReset = await kitsyncJson<Stats>(hb, ['stats'])
    expect(afterReset.since).toBeGreaterThan(cleared.since)
    expect(afterReset.peers[deviceA]?.sessions).toBe(1) // counted from zero again: the reopened session
    expect(await b2.get('journal', 'd1').catch((e: { code: string }) => e.code)).toBe('UNKNOWN_COLLECTION')
    expect((await kitsyncJson<Stats>(hb, ['stats'])).peers[deviceA]?.updatesApplied ?? 0).toBeGreaterThanOrEqual(1)
    expect(hc).toBeDefined()
  })

  it('sync now needs the running peer; local-only collections never leave a device', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    expectCliError(await kitsync(home, ['sync', 'now']), 'PEER_NOT_RUNNING', 4)
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, ['--local-only', 'scratch'])
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    await peer(hb)
    const a = await client(ha)
    const b = await client(hb)
    await a.set('scratch', 'mine', 'a only')
    await b.set('scratch', 'theirs', 'b only')
    await a.set('notes', 'n1', 'shared')
    await until(b, 'notes', 'n1', 'shared')
    await kitsyncJson(hb, ['sync', 'now', '--timeout', '10'])
    await b.set('notes', 'n2', 'back')
    await until(a, 'notes', 'n2', 'back')
    expect(await a.getAll('scratch')).toEqual({ mine: 'a only' })
    expect(await b.getAll('scratch')).toEqual({ theirs: 'b only' })
    expect((await kitsyncJson<{ collections: { name: string; syncs: boolean }[] }>(ha, ['items'])).collections).toEqual(
      expect.arrayContaining([{ name: 'scratch', syncs: false, reason: 'local-only' }]),
    )
  })
})
