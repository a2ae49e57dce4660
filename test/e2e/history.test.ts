import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { HistoryEntry, RestoreResult, Workspace } from '../../dist/index.js'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/** Record history and restore through real `kitsync` processes, two peers over libp2p on loopback. */

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

describe('history and restore through the CLI', () => {
  it('lists versions with device names, restores one that syncs to the other peer and survives a restart', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    let pa = await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    const aName = (await kitsyncJson<{ name: string; self: boolean }[]>(ha, ['devices', '--json'])).find((d) => d.self)?.name
    expect(aName).toBeTruthy()

    for (const v of ['v1', 'v2', 'v3']) await kitsyncOk(ha, ['set', 'notes', 'k', JSON.stringify({ text: v, pinned: false })])
    const listed = await kitsyncJson<HistoryEntry[]>(ha, ['history', 'notes', 'k', '--json'])
    expect(listed.map((e) => e.value)).toEqual([
      { pinned: false, text: 'v3' },
      { pinned: false, text: 'v2' },
      { pinned: false, text: 'v1' },
    ])
    expect(listed.map((e) => e.device)).toEqual([aName, aName, aName])
    expect(listed[0]?.fields).toEqual(['text'])
    expect(listed.every((e) => e.deleted === false && typeof e.stamp === 'string' && e.time > 0)).toBe(true)
    expect((await kitsyncJson<HistoryEntry[]>(ha, ['history', 'notes', 'k', '--json', '--limit', '2'])).map((e) => e.stamp)).toEqual(
      listed.slice(0, 2).map((e) => e.stamp),
    )
    // The human listing names the device and the stamp.
    const human = await kitsyncOk(ha, ['history', 'notes', 'k'])
    expect(human).toContain(listed[2]?.stamp as string)
    expect(human).toContain(aName as string)

    const pb = await peer(hb)
    const b = await client(hb)
    await until(b, 'notes', 'k', { text: 'v3', pinned: false })

    const v1 = listed[2] as HistoryEntry
    const restored = await kitsyncJson<RestoreResult>(ha, ['restore', 'notes', 'k', '--version', v1.stamp, '--json'])
    expect(restored.restored.stamp).toBe(v1.stamp)
    expect(restored.stamp > (listed[0]?.stamp as string)).toBe(true)
    // A new write: it reaches the other device over libp2p.
    await until(b, 'notes', 'k', { text: 'v1', pinned: false })

    // A version written on B is listed on A under B's name.
    let a = await client(ha)
    await kitsyncOk(hb, ['set', 'notes', 'k', '{"text":"from bee","pinned":true}'])
    await until(a, 'notes', 'k', { text: 'from bee', pinned: true })
    const fromB = await waitUntil(
      async () => {
        const h = await a.history('notes', 'k')
        return h[0]?.value !== undefined && isDeepStrictEqual(h[0].value, { text: 'from bee', pinned: true }) ? h : undefined
      },
      SYNC_TIMEOUT,
      'the version from bee in A’s history',
    )
    expect(fromB[0]).toMatchObject({ device: 'bee', fields: ['pinned', 'text'] })
    expect(fromB.slice(1).map((e) => e.stamp)).toEqual([restored.stamp, ...listed.map((e) => e.stamp)])

    // The restore and the history stay after A's peer restarts (read here without a peer, then with one).
    await a.close()
    forget(a)
    await stop(pa)
    const offline = await kitsyncJson<HistoryEntry[]>(ha, ['history', 'notes', 'k', '--json'])
    expect(offline.map((e) => e.stamp)).toEqual(fromB.map((e) => e.stamp))
    expect(offline[1]).toMatchObject({ value: { text: 'v1', pinned: false }, device: aName })
    pa = await peer(ha)
    a = await client(ha)
    expect(await a.get('notes', 'k')).toEqual({ text: 'from bee', pinned: true })
    expect((await a.history('notes', 'k')).map((e) => e.stamp)).toEqual(fromB.map((e) => e.stamp))

    // The collection's recent changes, through the CLI and its control socket.
    const changes = await kitsyncJson<HistoryEntry[]>(ha, ['history', '--collection', 'notes', '--since', '1h', '--json'])
    expect(changes.map((c) => c.key)).toEqual(['k', 'k', 'k', 'k', 'k'])
    expect(changes[0]?.device).toBe('bee')
    expect(await kitsyncJson<HistoryEntry[]>(ha, ['history', '--collection', 'notes', '--since', '2099-01-01', '--json'])).toEqual([])
    await stop(pb)
  })

  it('refuses unknown versions, keys and collections with codes; sets retention per collection', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['set', 'notes', 'k', '1'])
    expectCliError(await kitsync(home, ['restore', 'notes', 'k', '--version', '0000000zz.0000.nobody']), 'NOT_FOUND', 3)
    expectCliError(await kitsync(home, ['history', 'notes', 'missing']), 'NOT_FOUND', 3)
    expectCliError(await kitsync(home, ['history', 'nope', 'k']), 'UNKNOWN_COLLECTION', 3)
    expectCliError(await kitsync(home, ['history', 'notes', 'k', '--since', 'last week']), 'INVALID_ARGUMENT', 2)
    expectCliError(await kitsync(home, ['restore', 'notes', 'k']), 'INVALID_ARGUMENT', 2)
    expect(JSON.parse(await kitsyncOk(home, ['get', 'notes', 'k', '--json']))).toBe(1)
    const shown = await kitsyncJson<{ history: unknown }>(home, ['collection', 'set', 'notes', '--history', '50,30d', '--json'])
    expect(shown.history).toEqual({ off: false, count: 50, days: 30 })
    expect(await kitsyncOk(home, ['collection', 'show', 'notes'])).toContain('last 50 versions, 30 days')
    expectCliError(await kitsync(home, ['collection', 'set', 'notes', '--history', 'forever']), 'INVALID_ARGUMENT', 2)
  })
})
