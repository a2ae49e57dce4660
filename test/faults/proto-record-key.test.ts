import { describe, expect, it } from 'vitest'
import { openWorkspace } from '../../src/api/open-workspace.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { cleanup, kitsyncJson, kitsyncOk, makeHome, startPeer, stopProc } from '../helpers/cli.js'
import { afterAll } from 'vitest'

/**
 * Issue 19, item 15a: a record stored under the key `__proto__` was missing from `getAll` and
 * `export`: they built a plain object, where assigning `__proto__` sets the prototype instead
 * of adding a key. The record was there (`get` found it), but a backup made by `export` lost it.
 */

afterAll(cleanup)

const LOCAL = Symbol('local')

describe('a record keyed __proto__', () => {
  it('is in the collection’s entries, with the other records', () => {
    const c = new RecordCollection('c')
    c.set('__proto__', { a: 1 }, LOCAL)
    c.set('b', 2, LOCAL)
    const all = c.entries()
    expect(Object.keys(all)).toEqual(['__proto__', 'b'])
    expect(Object.getOwnPropertyDescriptor(all, '__proto__')?.value).toEqual({ a: 1 })
    expect(JSON.stringify(all)).toBe('{"__proto__":{"a":1},"b":2}')
  })

  it('is in getAll and export of a workspace (LevelDB in a temp home), and after a reopen', async () => {
    const home = await makeHome()
    let ws = await openWorkspace({ home, mode: 'local', serve: false })
    await ws.set('c', '__proto__', { a: 1 })
    await ws.set('c', 'constructor', 'x')
    const check = async (): Promise<void> => {
      expect(JSON.stringify(await ws.getAll('c'))).toBe('{"__proto__":{"a":1},"constructor":"x"}')
      const exported = await ws.export()
      expect(JSON.stringify(exported.collections.c)).toBe('{"__proto__":{"a":1},"constructor":"x"}')
    }
    await check()
    await ws.close()
    ws = await openWorkspace({ home, mode: 'local', serve: false })
    await check()
    await ws.close()
  })

  it('is in `kitsync get c` and `kitsync export`, without a peer and through one', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['set', 'c', '__proto__', '{"a":1}'])
    const expected = '{"__proto__":{"a":1}}'
    expect((await kitsyncOk(home, ['get', 'c', '--json'])).trim()).toBe(expected)
    const exported = (await kitsyncOk(home, ['export', '--json'])).trim()
    expect(exported).toContain(`"collections":{"c":${expected}}`)
    const peer = await startPeer(home)
    expect((await kitsyncOk(home, ['get', 'c', '--json'])).trim()).toBe(expected)
    expect(await kitsyncJson(home, ['get', 'c', '__proto__'])).toEqual({ a: 1 })
    expect((await kitsyncOk(home, ['export', '--json'])).trim()).toContain(`"collections":{"c":${expected}}`)
    expect(await stopProc(peer.proc)).toEqual({ code: 0, signal: null })
  })
})
