import { isDeepStrictEqual } from 'node:util'
import { describe, it } from 'vitest'
import type { Workspace } from '../../dist/index.js'
import { kitsyncOk, makeHome, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 19, item 12: a collection taken out of a running peer's items and added back got
 * nothing more (missed writes and new ones) until `sync now`: the session remembered it had
 * exchanged the collection once and did not ask for it again. Two real peers on loopback;
 * the items change at run time through the running peer, twice in a row.
 */

const SYNC_TIMEOUT = 15_000
const { peer, client, invite } = devicesOfTest()

async function until(ws: Workspace, collection: string, key: string, expected: unknown): Promise<void> {
  await waitUntil(
    async () => (isDeepStrictEqual(await ws.get(collection, key).catch(() => undefined), expected) ? true : undefined),
    SYNC_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)}`,
  )
}

describe('selective sync resumes for a collection added back at run time', () => {
  it('B gets the missed write and then new ones after items add / items all, each time', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    await peer(hb)
    const a = await client(ha)
    const b = await client(hb)
    await a.set('settings', 's0', 0)
    await a.set('watchlists', 'w0', { symbols: ['W0'] })
    await until(b, 'settings', 's0', 0)
    await until(b, 'watchlists', 'w0', { symbols: ['W0'] })

    for (const [round, addBack] of [
      [1, ['items', 'add', 'settings']],
      [2, ['items', 'all']],
      [3, ['items', 'add', 'settings']],
    ] as const) {
      await kitsyncOk(hb, ['items', 'set', 'watchlists'])
      await a.set('settings', `missed${round}`, round)
      // Still synced: watchlists (so the session is up and A's missed write was sent before this one).
      await a.set('watchlists', `w${round}`, { symbols: [`W${round}`] })
      await until(b, 'watchlists', `w${round}`, { symbols: [`W${round}`] })
      await kitsyncOk(hb, [...addBack])
      await until(b, 'settings', `missed${round}`, round)
      await a.set('settings', `new${round}`, round)
      await until(b, 'settings', `new${round}`, round)
    }
  })
})
