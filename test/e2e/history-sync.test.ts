import { describe, expect, it } from 'vitest'
import type { HistoryEntry } from '../../dist/index.js'
import { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import { kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * History that syncs (docs/PROTOCOL.md, "History"): two real peers over libp2p on loopback,
 * through the CLI. A device that joins later, or was offline while a record was overwritten,
 * gets the versions it never saw, within its collection's retention.
 */

const SYNC_TIMEOUT = 20_000
const DAY_MS = 86_400_000
const { peer, invite, forget } = devicesOfTest()

async function stop(p: RunningPeer): Promise<void> {
  await stopProc(p.proc)
  forget(p)
}

const history = (home: string, key: string): Promise<HistoryEntry[]> => kitsyncJson<HistoryEntry[]>(home, ['history', 'notes', key, '--json'])

/** The record's history on `home` once it lists `n` versions. */
function historyOf(home: string, key: string, n: number): Promise<HistoryEntry[]> {
  return waitUntil(
    async () => {
      const h = await history(home, key).catch(() => undefined)
      return h !== undefined && h.length >= n ? h : undefined
    },
    SYNC_TIMEOUT,
    `${n} versions of notes/${key} on ${home}`,
  )
}

async function selfName(home: string): Promise<string> {
  const name = (await kitsyncJson<{ name: string; self: boolean }[]>(home, ['devices', '--json'])).find((d) => d.self)?.name
  expect(name).toBeTruthy()
  return name as string
}

describe('history sync between two peers', () => {
  it('a device that joins later lists the versions made before it joined, and gets those it missed while offline', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha)
    for (let i = 1; i <= 5; i++) await kitsyncOk(ha, ['set', 'notes', 'k', JSON.stringify({ text: `v${i}`, n: i })])
    const onA = await history(ha, 'k')
    expect(onA).toHaveLength(5)

    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    const aName = await selfName(ha)
    let pb = await peer(hb)
    // Without history sync B would hold one version: the record's current one.
    const onB = await historyOf(hb, 'k', 5)
    expect(onB.map((e) => e.stamp)).toEqual(onA.map((e) => e.stamp))
    expect(onB.map((e) => e.value)).toEqual([5, 4, 3, 2, 1].map((i) => ({ text: `v${i}`, n: i })))
    expect(onB.map((e) => e.device)).toEqual(Array(5).fill(aName))
    expect(onB.map((e) => e.fields)).toEqual(onA.map((e) => e.fields))
    expect(onB[0]?.fields).toEqual(['n', 'text'])
    // The collection's changes list them too (the c! rows came with the entries).
    const changes = await kitsyncJson<HistoryEntry[]>(hb, ['history', '--collection', 'notes', '--since', '1d', '--json'])
    expect(changes.map((c) => c.stamp)).toEqual(onA.map((e) => e.stamp))

    // Overwritten three times while B is offline: B's merge sees only the last (Yjs keeps no
    // overwritten value), the two before it come through history sync.
    await stop(pb)
    for (let i = 6; i <= 8; i++) await kitsyncOk(ha, ['set', 'notes', 'k', JSON.stringify({ text: `v${i}`, n: i })])
    const later = await history(ha, 'k')
    expect(later).toHaveLength(8)
    pb = await peer(hb)
    const back = await historyOf(hb, 'k', 8)
    expect(back.map((e) => e.stamp)).toEqual(later.map((e) => e.stamp))
    expect(back.slice(0, 3).map((e) => e.value)).toEqual([8, 7, 6].map((i) => ({ text: `v${i}`, n: i })))
    expect(back.every((e) => e.device === aName)).toBe(true)
  })

  it('versions older than the collection’s retention (days) are not stored on the joiner', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    // Two versions of notes/old written ten days ago (the workspace's clock set back).
    await kitsyncOk(ha, ['set', 'notes', 'seed', '0'])
    const past = await LocalWorkspace.open({ home: ha, now: () => Date.now() - 10 * DAY_MS })
    await past.set('notes', 'old', { text: 'old1' })
    await past.set('notes', 'old', { text: 'old2' })
    await past.close()
    await kitsyncOk(ha, ['collection', 'set', 'notes', '--history', '5d'])
    await peer(ha)
    for (let i = 1; i <= 3; i++) await kitsyncOk(ha, ['set', 'notes', 'k', JSON.stringify({ text: `new${i}` })])
    // A still holds both old versions (its day limit is applied hourly); they are past 5 days.
    const oldOnA = await history(ha, 'old')
    expect(oldOnA.map((e) => e.value)).toEqual([{ text: 'old2' }, { text: 'old1' }])
    expect(oldOnA.every((e) => e.time < Date.now() - 9 * DAY_MS)).toBe(true)

    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    await peer(hb)
    // new1 and new2 reach B only through history sync, in the same exchange as any old entry would.
    expect((await historyOf(hb, 'k', 3)).map((e) => e.value)).toEqual([{ text: 'new3' }, { text: 'new2' }, { text: 'new1' }])
    // B has the record's current version only (derived when it took the collection), not old1.
    const oldOnB = await history(hb, 'old')
    expect(oldOnB.map((e) => e.stamp)).toEqual([oldOnA[0]?.stamp])
  })
})
