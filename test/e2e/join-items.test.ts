import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { Workspace } from '../../dist/index.js'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/** `kitsync join --items`: a device that wants part of the workspace never copies the rest. */

const SYNC_TIMEOUT = 20_000
const { peer, client, invite } = devicesOfTest()

async function until(ws: Workspace, collection: string, key: string, expected: unknown): Promise<void> {
  await waitUntil(
    async () => (isDeepStrictEqual(await ws.get(collection, key).catch(() => undefined), expected) ? true : undefined),
    SYNC_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)}`,
  )
}

/** Every file under `dir` whose bytes contain `marker`. */
async function filesHolding(dir: string, marker: string): Promise<string[]> {
  const hits: string[] = []
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    if ((await readFile(path)).includes(marker)) hits.push(path)
  }
  return hits
}

const names = async (home: string): Promise<string[]> => (await kitsyncJson<{ name: string }[]>(home, ['list'])).map((c) => c.name).sort()

describe('join --items', () => {
  it('copies only the items from the first sync on, and later writes to other collections never arrive', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha)
    const a = await client(ha)
    await a.set('alerts', 'btc', { symbol: 'BTC', above: 100000 })
    await a.set('alerts-eu', 'dax', { symbol: 'VISIBLE-ALERT-MARKER', above: 15000 })
    await a.set('watchlists', 'tech', { symbols: ['SECRET-WATCHLIST-MARKER'] })
    await a.set('journal', 'd1', 'SECRET-JOURNAL-MARKER')

    // a bad pattern is refused before anything is made
    expectCliError(await kitsync(hb, ['join', await invite(ha), '--items', 'a[b', ...NET]), 'INVALID_NAME', 2)
    expect(await readdir(hb).catch(() => [])).toEqual([])

    const joined = await kitsyncJson<{ caughtUp: boolean }>(hb, ['join', await invite(ha), '--name', 'bee', '--items', 'alerts*', '--json', ...NET])
    expect(joined.caughtUp).toBe(true)
    expect(await names(hb)).toEqual(['alerts', 'alerts-eu'])
    expect(await kitsyncJson(hb, ['items'])).toMatchObject({ items: ['alerts*'] })
    const exported = JSON.parse(await kitsyncOk(hb, ['export'])) as { collections: Record<string, Record<string, unknown>> }
    expect(Object.keys(exported.collections).sort()).toEqual(['alerts', 'alerts-eu'])
    expect(exported.collections.alerts).toEqual({ btc: { symbol: 'BTC', above: 100000 } })
    // never requested nor stored: not a byte of the other collections is in the home (the
    // items' bytes are, so the search would find a marker there)
    expect((await filesHolding(hb, 'VISIBLE-ALERT-MARKER')).length).toBeGreaterThan(0)
    expect(await filesHolding(hb, 'SECRET-JOURNAL-MARKER')).toEqual([])
    expect(await filesHolding(hb, 'SECRET-WATCHLIST-MARKER')).toEqual([])

    // later: writes to other collections on the inviter never arrive; writes to the items do
    await peer(hb)
    const b = await client(hb)
    await a.set('journal', 'd2', 'LATER-JOURNAL-MARKER')
    await a.set('watchlists', 'energy', { symbols: ['LATER-WATCHLIST-MARKER'] })
    await a.set('alerts', 'eth', { symbol: 'ETH', above: 5000 })
    await until(b, 'alerts', 'eth', { symbol: 'ETH', above: 5000 })
    expect((await b.list()).map((c) => c.name).sort()).toEqual(['alerts', 'alerts-eu'])
    expect(await filesHolding(hb, 'LATER-JOURNAL-MARKER')).toEqual([])
    expect(await filesHolding(hb, 'LATER-WATCHLIST-MARKER')).toEqual([])

    // through a running peer of the new device: the same (the items are set before the join)
    const hc = await makeHome()
    await peer(hc)
    await kitsyncOk(hc, ['join', await invite(ha), '--name', 'sea', '--items', 'alerts-eu'])
    expect(await names(hc)).toEqual(['alerts-eu'])
    expect(await filesHolding(hc, 'SECRET-JOURNAL-MARKER')).toEqual([])
    expect(await filesHolding(hc, 'VISIBLE-ALERT-MARKER')).not.toEqual([])
  })
})
