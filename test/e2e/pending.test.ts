/**
 * Issue 23, pending per device where an operator looks: a Prometheus scrape of a real peer
 * (`kitsync_device_pending_updates`, also for an offline device, with the sync state and the
 * updates sent), and the count after the peer is killed with SIGKILL and started again. Two
 * real peers on loopback.
 */
import { describe, expect, it } from 'vitest'
import { join } from 'node:path'
import {
  FIXTURES,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  spawnNode,
  START_TIMEOUT_MS,
  STOP_TIMEOUT_MS,
  stopProc,
  waitUntil,
  type RunningPeer,
} from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'
import { parsePrometheus } from '../helpers/prometheus.js'

const DEADLINE = 20_000
const { peer, invite, forget } = devicesOfTest()

interface DeviceSync {
  deviceId: string
  state: string
  pending: number
  pendingByCollection: Record<string, number>
}

const devicesOf = async (home: string): Promise<DeviceSync[]> =>
  (await kitsyncJson<{ sync: { devices: DeviceSync[] } }>(home, ['status', '--json'])).sync.devices

async function value(home: string, collection: string, key: string): Promise<unknown> {
  const r = await kitsync(home, ['get', collection, key, '--json'])
  return r.code === 0 ? (JSON.parse(r.stdout) as unknown) : undefined
}

async function scrape(home: string): Promise<Map<string, number>> {
  const d = await kitsyncJson<{ url: string; token: string }>(home, ['dashboard'])
  const res = await fetch(`${d.url}metrics`, { headers: { Authorization: `Bearer ${d.token}` } })
  expect(res.status).toBe(200)
  return parsePrometheus(await res.text())
}

/** A and B paired, running, B holding A's first write; then B stopped (cleanly) and offline on A. */
async function bOffline(): Promise<{ ha: string; hb: string; pa: RunningPeer; b: string; address: string }> {
  const [ha, hb] = [await makeHome(), await makeHome()]
  const pa = await peer(ha, NET)
  await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
  const pb = await peer(hb, NET)
  await kitsyncOk(ha, ['set', 'notes', 'warm', '1'])
  await waitUntil(async () => ((await value(hb, 'notes', 'warm')) === 1 ? true : undefined), DEADLINE, 'the first write on B')
  await waitUntil(async () => ((await devicesOf(ha))[0]?.pending === 0 ? true : undefined), DEADLINE, '0 pending for B on A')
  await stopProc(pb.proc)
  forget(pb)
  await waitUntil(async () => ((await devicesOf(ha))[0]?.state === 'offline' ? true : undefined), DEADLINE, 'B offline on A')
  const listen = (await kitsyncJson<{ network: { listen: string[] } }>(ha, ['status', '--json'])).network.listen
  const address = listen.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))?.replace(/\/p2p\/.*$/, '') ?? ''
  expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
  return { ha, hb, pa, b: pb.started.deviceId, address }
}

describe('pending per device', () => {
  it('is in /metrics for an offline device, as status counts it, and drops to 0 once the device is back', async () => {
    const { ha, hb, b } = await bOffline()
    const pendingOf = (m: Map<string, number>): number | undefined => m.get(`kitsync_device_pending_updates{device="${b}"}`)
    expect(pendingOf(await scrape(ha))).toBe(0)

    await kitsyncOk(ha, ['set', 'notes', 'n1', '"one"'])
    await kitsyncOk(ha, ['set', 'todo', 't1', '"two"'])
    const offline = await scrape(ha)
    const status = (await devicesOf(ha))[0]
    expect(status?.pending).toBeGreaterThan(0)
    expect(pendingOf(offline)).toBe(status?.pending)
    expect(offline.get(`kitsync_device_collection_pending_updates{device="${b}",collection="notes"}`)).toBe(status?.pendingByCollection.notes)
    expect(offline.get(`kitsync_device_collection_pending_updates{device="${b}",collection="todo"}`)).toBe(status?.pendingByCollection.todo)
    expect(offline.get(`kitsync_device_sync_state{device="${b}",state="offline"}`)).toBe(1)
    expect(offline.get(`kitsync_device_updates_sent_total{device="${b}"}`)).toBeGreaterThan(0) // the warm-up write went out
    expect(offline.get(`kitsync_device_last_sync_timestamp_seconds{device="${b}"}`)).toBeGreaterThan(Date.now() / 1000 - 600)
    expect(offline.get('kitsync_sync_paused')).toBe(0)
    await kitsyncOk(ha, ['set', 'notes', 'n2', '"three"'])
    expect(pendingOf(await scrape(ha))).toBeGreaterThan(status?.pending ?? 0)

    await peer(hb, NET)
    await waitUntil(async () => ((await value(hb, 'notes', 'n2')) === 'three' ? true : undefined), DEADLINE, "A's writes on B")
    const back = await waitUntil(
      async () => {
        const m = await scrape(ha)
        return pendingOf(m) === 0 && m.get(`kitsync_device_sync_state{device="${b}",state="idle"}`) === 1 ? m : undefined
      },
      DEADLINE,
      '0 pending and idle for B in the metrics of A',
    )
    expect([...back.keys()].filter((k) => k.startsWith('kitsync_device_collection_pending_updates'))).toEqual([])
    await kitsyncOk(ha, ['sync', 'pause'])
    const paused = await scrape(ha)
    expect(paused.get('kitsync_sync_paused')).toBe(1)
    expect(paused.get(`kitsync_device_sync_state{device="${b}",state="paused"}`)).toBe(1)
  })

  it('survives kill -9 of the peer: with no peer and after the restart, status counts the same pending for the offline device', async () => {
    const { ha, hb, pa, address } = await bOffline()
    // Writes in two collections (two document clients), the last one just before the kill.
    await kitsyncOk(ha, ['set', 'notes', 'n1', '"one"'])
    await kitsyncOk(ha, ['set', 'todo', 't1', '"two"'])
    await kitsyncOk(ha, ['set', 'notes', 'n2', '"three"'])
    const before = (await devicesOf(ha))[0]
    expect(before?.pending).toBeGreaterThan(0)
    expect(await stopProc(pa.proc, 'SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' })
    forget(pa)
    // No peer: status reads the store, and counts the same.
    const stopped = await kitsyncJson<{ sync: { live: boolean; devices: DeviceSync[] } }>(ha, ['status', '--json'])
    expect(stopped.sync.live).toBe(false)
    expect(stopped.sync.devices[0]?.pending).toBe(before?.pending)
    expect(stopped.sync.devices[0]?.pendingByCollection).toEqual(before?.pendingByCollection)

    await peer(ha, ['--listen', address, '--no-mdns'])
    const after = (await devicesOf(ha))[0]
    expect(after?.state).toBe('offline')
    expect(after?.pending).toBe(before?.pending)
    expect(after?.pendingByCollection).toEqual(before?.pendingByCollection)
    // A write after the restart counts on top.
    await kitsyncOk(ha, ['set', 'notes', 'n3', '"four"'])
    expect((await devicesOf(ha))[0]?.pending).toBeGreaterThan(before?.pending ?? 0)

    // B is back: it gets them all, and nothing is pending any more.
    await peer(hb, NET)
    await waitUntil(async () => ((await value(hb, 'notes', 'n3')) === 'four' ? true : undefined), DEADLINE, "A's writes on B")
    expect([await value(hb, 'notes', 'n1'), await value(hb, 'todo', 't1'), await value(hb, 'notes', 'n2')]).toEqual(['one', 'two', 'three'])
    await waitUntil(async () => ((await devicesOf(ha))[0]?.pending === 0 ? true : undefined), DEADLINE, '0 pending for B on A')
  })

  it('counts writes made while no peer runs: the CLI, and an app process killed with SIGKILL; the peer then sends them', async () => {
    const { ha, hb, pa, address } = await bOffline()
    await stopProc(pa.proc)
    forget(pa)
    expect((await devicesOf(ha))[0]?.pending).toBe(0)
    // No peer on A: the CLI writes to the store itself.
    await kitsyncOk(ha, ['set', 'notes', 'n1', '"one"'])
    const byCli = (await devicesOf(ha))[0]
    expect(byCli?.pendingByCollection.notes).toBeGreaterThan(0)
    // An app's own process writes and is killed: every acknowledged write is counted.
    const writer = spawnNode(join(FIXTURES, 'writer.mjs'), [ha, 'log', 'w', '2'])
    await writer.waitForLine((l) => l.startsWith('{"ready":true'), START_TIMEOUT_MS, 'the ready line')
    await writer.waitForLineCount(41, DEADLINE)
    writer.kill('SIGKILL')
    expect(await writer.waitForExit(STOP_TIMEOUT_MS)).toEqual({ code: null, signal: 'SIGKILL' })
    const acknowledged = writer
      .transcript()
      .split('\n')
      .filter((l) => l.startsWith('{"key"')).length
    expect(acknowledged).toBeGreaterThanOrEqual(40)
    const killed = (await devicesOf(ha))[0]
    expect(killed?.pendingByCollection.notes).toBe(byCli?.pendingByCollection.notes)
    expect(killed?.pendingByCollection.log).toBeGreaterThanOrEqual(acknowledged)

    // The peer starts with the same counts, and B gets everything once it is back.
    await peer(ha, ['--listen', address, '--no-mdns'])
    expect((await devicesOf(ha))[0]?.pendingByCollection).toEqual(killed?.pendingByCollection)
    await peer(hb, NET)
    await waitUntil(async () => ((await devicesOf(ha))[0]?.pending === 0 ? true : undefined), DEADLINE, '0 pending for B on A')
    expect(await value(hb, 'notes', 'n1')).toBe('one')
    expect(Object.keys(await kitsyncJson<Record<string, unknown>>(hb, ['get', 'log', '--json'])).length).toBeGreaterThanOrEqual(acknowledged)
  })
})
