import { afterAll, describe, expect, it } from 'vitest'
import { cleanup, kitsync, kitsyncOk, makeHome } from '../helpers/cli.js'

/**
 * Issue 23: a write to a collection this device does not sync (outside its items, or
 * local-only) warns on stderr that it stays here; the write is done, the exit code 0. Real CLI
 * processes on a real store.
 */

afterAll(cleanup)

const WARNING = /^kitsync: warning: (\S+) does not sync from this device, so this write stays here: .*\n$/

describe('writes outside the items', () => {
  it('set, append, add, remove and delete warn for a collection that does not sync, and only then', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['items', 'set', 'alerts*'])
    await kitsyncOk(home, ['items', 'add', 'scratch', '--local-only'])

    const writes: [string[], string][] = [
      [['set', 'notes', 'n1', '"kept here"'], 'notes'],
      [['append', 'journal', '"a line"'], 'journal'],
      [['add', 'watchlists', 'tech', 'symbols', 'AAPL', 'AMD'], 'watchlists'],
      [['remove', 'watchlists', 'tech', 'symbols', 'AMD'], 'watchlists'],
      [['del', 'notes', 'n1'], 'notes'],
    ]
    for (const [args, collection] of writes) {
      const r = await kitsync(home, args)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toMatch(WARNING)
      expect(WARNING.exec(r.stderr)?.[1]).toBe(collection)
      expect(r.stderr).toContain(`kitsync items add ${collection}`)
    }
    // the writes were done all the same
    expect(JSON.parse(await kitsyncOk(home, ['get', 'watchlists', 'tech', '--json']))).toMatchObject({ symbols: ['AAPL'] })

    const local = await kitsync(home, ['set', 'scratch', 's1', '1'])
    expect(local.code, local.stderr).toBe(0)
    expect(local.stderr).toMatch(WARNING)
    expect(local.stderr).toContain('local-only')
    expect(local.stderr).toContain('kitsync items remove scratch --local-only')

    // collections in the items: no warning
    for (const args of [
      ['set', 'alerts', 'a1', '{"symbol":"X","above":1}'],
      ['set', 'alerts-eu', 'a1', '{"symbol":"X","above":1}'],
    ]) {
      const r = await kitsync(home, args)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe('')
    }
    // a device that syncs everything: no warning either
    const all = await makeHome()
    const r = await kitsync(all, ['set', 'notes', 'n1', '"x"'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
  })
})
