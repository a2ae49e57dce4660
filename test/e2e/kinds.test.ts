import { isDeepStrictEqual } from 'node:util'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { resolveWith, type ConflictEvent, type Workspace } from '../../dist/index.js'
import { expectCliError, expectJsonCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/** Collection kinds and conflict policies through real `kitsync` processes on loopback. */

const SYNC_TIMEOUT = 20_000
const { peer, client, invite, forget } = devicesOfTest()

async function until(ws: Workspace, collection: string, key: string, expected: unknown): Promise<void> {
  await waitUntil(
    async () => (isDeepStrictEqual(await ws.get(collection, key).catch(() => undefined), expected) ? true : undefined),
    SYNC_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)}`,
  )
}

async function stop(p: RunningPeer): Promise<void> {
  await stopProc(p.proc)
  forget(p)
}

/** Two paired devices; B's peer is not running. */
async function pair(): Promise<{ ha: string; hb: string }> {
  const [ha, hb] = [await makeHome(), await makeHome()]
  await peer(ha)
  await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', ...NET])
  return { ha, hb }
}

describe('collection kinds through the CLI', () => {
  it('refuses what a kind forbids with a code and exit 10, writing nothing', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjE=\\n-----END OPENSSH PRIVATE KEY-----'
    expectCliError(await kitsync(home, ['set', 'ssh', 'web', `{"host":"web.lan","key":"${pem}"}`]), 'PRIVATE_KEY_REFUSED', 10)
    const secret = expectJsonCliError(await kitsync(home, ['append', 'history', '{"command":"export API_TOKEN=abc123def"}', '--json']), 'SECRET_REFUSED', 10)
    expect(secret.details).toMatchObject({ rule: 'secret-variable' })
    const { key } = await kitsyncJson<{ key: string }>(home, ['append', 'journal', '{"text":"first"}', '--json'])
    expectCliError(await kitsync(home, ['set', 'journal', key, '{"text":"changed"}']), 'APPEND_ONLY', 10)
    expectCliError(await kitsync(home, ['del', 'journal', key]), 'APPEND_ONLY', 10)
    expectCliError(await kitsync(home, ['set', 'alerts', 'x', '{"price":1}']), 'INVALID_RECORD', 10)
    await kitsyncOk(home, ['collection', 'set', 'templates', '--limit', 'maxRecords=1'])
    await kitsyncOk(home, ['set', 'templates', 't1', '{}'])
    expectCliError(await kitsync(home, ['set', 'templates', 't2', '{}']), 'LIMIT_EXCEEDED', 10)
    expectCliError(await kitsync(home, ['collection', 'set', 'templates', '--policy', 'whatever']), 'INVALID_ARGUMENT', 2)
    const exported = await kitsyncJson<{ collections: Record<string, Record<string, unknown>> }>(home, ['export', '--json'])
    expect(Object.keys(exported.collections).sort()).toEqual(['journal', 'templates'])
    expect(Object.values(exported.collections.journal ?? {})).toEqual([{ text: 'first' }])
    // The refused secret is nowhere in the store, not even in the write-ahead file.
    const files = await readdir(join(home, 'store'))
    for (const f of [...files.map((f) => join(home, 'store', f)), join(home, 'store.wal')]) {
      const bytes = await readFile(f).catch(() => Buffer.alloc(0))
      expect(bytes.includes('abc123def'), f).toBe(false)
      expect(bytes.includes('b3BlbnNzaC1rZXktdjE'), f).toBe(false)
    }
  })

  it('merges watchlist adds and removes made offline on two devices, with the CLI', async () => {
    const { ha, hb } = await pair()
    await kitsyncOk(ha, ['set', 'watchlists', 'tech', '{"name":"Tech","symbols":["AAPL","MSFT"]}'])
    let pb = await peer(hb)
    const b = await client(hb)
    await until(b, 'watchlists', 'tech', { name: 'Tech', symbols: ['AAPL', 'MSFT'] })
    await b.close()
    forget(b)
    await stop(pb)
    await kitsyncOk(ha, ['add', 'watchlists', 'tech', 'symbols', 'NVDA'])
    await kitsyncOk(hb, ['remove', 'watchlists', 'tech', 'symbols', 'AAPL']) // offline: straight into B's store
    await kitsyncOk(hb, ['add', 'watchlists', 'tech', 'symbols', 'AMD'])
    pb = await peer(hb)
    const expected = { name: 'Tech', symbols: ['AMD', 'MSFT', 'NVDA'] }
    await until(await client(ha), 'watchlists', 'tech', expected)
    await until(await client(hb), 'watchlists', 'tech', expected)
  })

  it('ask: both devices list the conflict; resolve on one settles it on both; events reach the library', async () => {
    const { ha, hb } = await pair()
    await kitsyncOk(ha, ['collection', 'set', 'alerts', '--policy', 'ask'])
    await kitsyncOk(ha, ['set', 'alerts', 'x', '{"symbol":"AAPL","price":100}'])
    let pb = await peer(hb)
    const b = await client(hb)
    await until(b, 'alerts', 'x', { symbol: 'AAPL', price: 100 })
    expect((await b.collection('alerts')).policy).toBe('ask')
    await b.close()
    forget(b)
    await stop(pb)
    // Concurrent offline edits: B's store directly, A through its peer.
    await kitsyncOk(hb, ['set', 'alerts', 'x', '{"symbol":"AAPL","price":140}'])
    await kitsyncOk(ha, ['set', 'alerts', 'x', '{"symbol":"AAPL","price":150}'])
    const a = await client(ha)
    const events: ConflictEvent[] = []
    a.on('sync:conflict', (e) => events.push(e))
    pb = await peer(hb)
    const listed = await waitUntil(
      async () => {
        const list = await kitsyncJson<{ id: string; versions: { device: string; value: unknown }[] }[]>(ha, ['conflicts', '--json'])
        return list.length === 1 ? list : undefined
      },
      SYNC_TIMEOUT,
      'the conflict to be listed on A',
    )
    const conflict = listed[0]!
    expect(conflict.versions.map((v) => v.value).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual([
      { symbol: 'AAPL', price: 140 },
      { symbol: 'AAPL', price: 150 },
    ])
    await waitUntil(
      async () => ((await kitsyncJson<unknown[]>(hb, ['conflicts', 'alerts', '--json'])).length === 1 ? true : undefined),
      SYNC_TIMEOUT,
      'B to list it too',
    )
    expect(await kitsyncOk(hb, ['conflicts'])).toContain(`${conflict.id}  alerts/x  (2 versions)`)
    const bTag = conflict.versions.find((v) => isDeepStrictEqual(v.value, { symbol: 'AAPL', price: 140 }))!.device
    expectCliError(await kitsync(hb, ['resolve', 'alerts', conflict.id]), 'INVALID_ARGUMENT', 2)
    expectCliError(await kitsync(hb, ['resolve', 'alerts', 'zzzzzz', '--take', bTag]), 'UNKNOWN_CONFLICT', 3)
    await kitsyncOk(hb, ['resolve', 'alerts', conflict.id, '--take', bTag])
    await until(a, 'alerts', 'x', { symbol: 'AAPL', price: 140 })
    await waitUntil(
      async () => ((await kitsyncJson<unknown[]>(ha, ['conflicts', '--json'])).length === 0 ? true : undefined),
      SYNC_TIMEOUT,
      'the conflict to clear on A',
    )
    // Whichever device found it, A's library got the event (found here, or recorded by B and synced).
    expect(events.filter((e) => e.collection === 'alerts' && e.key === 'x' && e.resolution === 'open').map((e) => e.id)).toEqual([conflict.id])
    // stats counts it for the collection on A (found there, or recorded by B and synced).
    const stats = await kitsyncJson<{ collections: Record<string, { conflicts: number }> }>(ha, ['stats', '--json'])
    expect(stats.collections.alerts?.conflicts).toBe(1)
    const log = (await kitsyncOk(ha, ['log', '--json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; reason: string })
    expect(log.some((e) => e.type === 'conflict' && e.reason.includes('alerts/x'))).toBe(true)
  })

  it('resolveWith settles ask conflicts with a function, through a running peer', async () => {
    const { ha, hb } = await pair()
    await kitsyncOk(ha, ['collection', 'create', 'stories', '--kind', 'generic', '--policy', 'ask'])
    await kitsyncOk(ha, ['set', 'stories', 's1', '{"title":"Draft","words":10}'])
    let pb = await peer(hb)
    const b = await client(hb)
    await until(b, 'stories', 's1', { title: 'Draft', words: 10 })
    await b.close()
    forget(b)
    await stop(pb)
    await kitsyncOk(hb, ['set', 'stories', 's1', '{"title":"B title","words":25}'])
    await kitsyncOk(ha, ['set', 'stories', 's1', '{"title":"A title","words":12}'])
    const a = await client(ha)
    // A custom resolver: keep the longer version.
    const stopResolver = await resolveWith(a, 'stories', (c) => {
      const longest = [...c.versions].sort((x, y) => ((y.value as { words: number }).words ?? 0) - ((x.value as { words: number }).words ?? 0))[0]!
      return { take: longest.device }
    })
    pb = await peer(hb)
    await until(a, 'stories', 's1', { title: 'B title', words: 25 })
    await until(await client(hb), 'stories', 's1', { title: 'B title', words: 25 })
    await waitUntil(async () => ((await a.conflicts()).length === 0 ? true : undefined), SYNC_TIMEOUT, 'no open conflict')
    stopResolver()
  })
})
