import { afterEach, describe, expect, it } from 'vitest'
import { waitUntil } from '../helpers/cli.js'
import { closeWorkspaces, openLocal } from '../helpers/local-workspaces.js'

afterEach(closeWorkspaces)

/**
 * A collection's retention, changed: the history already kept is pruned by the new setting within
 * a pass (a second), not only when each record is written again or at the hourly pass. On a real
 * LevelDB in a temporary home, through the workspace's own configure.
 */

describe('a retention change', () => {
  it('prunes the versions kept before it, without a new write of the record', { timeout: 30_000 }, async () => {
    const ws = await openLocal()
    for (let i = 0; i < 6; i++) await ws.set('notes', 'k', { i })
    await ws.set('notes', 'other', { i: 0 })
    // The pass after those writes, done: nothing of notes is waiting to be pruned.
    await ws.historyDesk.pruneNow(false)
    expect(await ws.history('notes', 'k')).toHaveLength(6)

    await ws.configure('notes', { history: { count: 2 } })
    const kept = await waitUntil(
      async () => ((await ws.history('notes', 'k')).length === 2 ? ws.history('notes', 'k') : undefined),
      10_000,
      'two versions of k',
    )
    expect(kept.map((e) => e.value)).toEqual([{ i: 5 }, { i: 4 }])
    expect(await ws.history('notes', 'other')).toHaveLength(1)

    // Off drops what was kept: no entry is left in the store (history then shows the record as it is).
    const entries = async (): Promise<number> => {
      let n = 0
      for await (const _key of ws.store.db.keys({ gte: 'h!notes!', lt: 'h!notes"' })) n++
      return n
    }
    expect(await entries()).toBe(3)
    await ws.configure('notes', { history: 'off' })
    await waitUntil(async () => ((await entries()) === 0 ? true : undefined), 10_000, 'no entry of notes kept')
  })
})
