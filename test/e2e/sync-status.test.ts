import { describe, expect, it } from 'vitest'
import { kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 23, "is it synced?": `kitsync status` gives the state per device and overall and the
 * pending count (this device's writes a device is not known to hold). Two real peers on
 * loopback: B stops, A's writes pile up as pending for B (kept across a restart of A's peer),
 * and drop to 0 once B is back and has them; a pause shows as `paused` with its end.
 */

const DEADLINE = 20_000
const { peer, invite, forget } = devicesOfTest()

interface DeviceSync {
  deviceId: string
  name: string
  state: string
  pending: number
  pendingByCollection: Record<string, number>
  lastSyncAt?: number
  lastExchangeMs?: number
}
interface Status {
  sync: { state: string; live: boolean; pending: number; paused?: { since: number; until?: number }; devices: DeviceSync[] }
}

const syncOf = async (home: string): Promise<Status['sync']> => (await kitsyncJson<Status>(home, ['status', '--json'])).sync

async function value(home: string, collection: string, key: string): Promise<unknown> {
  const r = await kitsync(home, ['get', collection, key, '--json'])
  return r.code === 0 ? (JSON.parse(r.stdout) as unknown) : undefined
}

describe('status: state and pending count per device', () => {
  it('pending on A grows while B is offline, survives a restart of A, and is 0 once B is back and synced', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    let pa = await peer(ha, NET)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
    let pb = await peer(hb, NET)
    await kitsyncOk(ha, ['set', 'notes', 'warm', '1'])
    await waitUntil(async () => ((await value(hb, 'notes', 'warm')) === 1 ? true : undefined), DEADLINE, 'the first write on B')
    // Connected and up to date: B is idle with nothing pending, named, with a last sync.
    const idle = await waitUntil(
      async () => {
        const s = await syncOf(ha)
        return s.state === 'idle' && s.devices[0]?.state === 'idle' && s.devices[0].pending === 0 ? s : undefined
      },
      DEADLINE,
      'B idle with 0 pending on A',
    )
    expect(idle.live).toBe(true)
    expect(idle.devices).toHaveLength(1)
    expect(idle.devices[0]).toMatchObject({ deviceId: pb.started.deviceId, name: 'phone', pendingByCollection: {} })
    expect(idle.devices[0]?.lastSyncAt).toBeTypeOf('number')
    expect(idle.devices[0]?.lastExchangeMs).toBeTypeOf('number')
    expect(await kitsyncOk(ha, ['status'])).toMatch(/sync {6}idle, 0 pending\n {10}phone \(…\w{8}\): idle, 0 pending, last sync 20/)

    // B goes away: offline, and every write on A is pending for it.
    await stopProc(pb.proc)
    forget(pb)
    await waitUntil(async () => ((await syncOf(ha)).devices[0]?.state === 'offline' ? true : undefined), DEADLINE, 'B offline on A')
    expect((await syncOf(ha)).state).toBe('offline')
    await kitsyncOk(ha, ['set', 'notes', 'n1', '"one"'])
    const one = (await syncOf(ha)).devices[0]
    expect(one?.pending).toBeGreaterThan(0)
    expect(Object.keys(one?.pendingByCollection ?? {})).toEqual(['notes'])
    await kitsyncOk(ha, ['set', 'notes', 'n2', '"two"'])
    await kitsyncOk(ha, ['set', 'todo', 't1', '"three"'])
    const three = await syncOf(ha)
    expect(three.devices[0]?.pending).toBeGreaterThan(one?.pending ?? 0)
    expect(Object.keys(three.devices[0]?.pendingByCollection ?? {}).sort()).toEqual(['notes', 'todo'])
    expect(three.pending).toBe(three.devices[0]?.pending)

    // A's peer restarts (on the port it had, where B looks for it): what B lacks is still known (kept in the local store).
    const listen = (await kitsyncJson<{ network: { listen: string[] } }>(ha, ['status', '--json'])).network.listen
    const address = listen.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))?.replace(/\/p2p\/.*$/, '') ?? ''
    expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
    await stopProc(pa.proc)
    forget(pa)
    const stopped = await syncOf(ha)
    expect(stopped.live).toBe(false)
    expect(stopped.devices[0]?.pending).toBe(three.devices[0]?.pending)
    pa = await peer(ha, ['--listen', address, '--no-mdns'])
    expect((await syncOf(ha)).devices[0]?.pending).toBe(three.devices[0]?.pending)

    // B is back: it gets the writes, and A counts nothing pending for it any more.
    pb = await peer(hb, NET)
    await waitUntil(async () => ((await value(hb, 'todo', 't1')) === 'three' ? true : undefined), DEADLINE, "A's writes on B")
    expect([await value(hb, 'notes', 'n1'), await value(hb, 'notes', 'n2')]).toEqual(['one', 'two'])
    const back = await waitUntil(
      async () => {
        const s = await syncOf(ha)
        return s.devices[0]?.pending === 0 && s.state === 'idle' ? s : undefined
      },
      DEADLINE,
      '0 pending for B on A',
    )
    expect(back.devices[0]?.pendingByCollection).toEqual({})
    expect(pa.started.deviceId).not.toBe(pb.started.deviceId)
  })

  it('paused: state paused with its end, writes counted as pending, 0 again after resume', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, NET)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
    await peer(hb, NET)
    await kitsyncOk(ha, ['sync', 'pause', '--for', '10m'])
    await kitsyncOk(ha, ['set', 'notes', 'p', '"paused"'])
    const s = await syncOf(ha)
    expect(s.state).toBe('paused')
    expect(s.devices[0]?.state).toBe('paused')
    expect(s.paused?.until).toBeGreaterThan(Date.now())
    expect(s.devices[0]?.pending).toBeGreaterThan(0)
    expect(await kitsyncOk(ha, ['status'])).toMatch(/sync {6}paused \(until 20.*\), \d+ pending/)
    await kitsyncOk(ha, ['sync', 'resume'])
    await waitUntil(async () => ((await value(hb, 'notes', 'p')) === 'paused' ? true : undefined), DEADLINE, 'the write on B after resume')
    await waitUntil(async () => ((await syncOf(ha)).devices[0]?.pending === 0 ? true : undefined), DEADLINE, '0 pending after resume')
  })
})
