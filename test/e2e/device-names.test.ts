import { describe, expect, it } from 'vitest'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 23: device names wherever a device is shown (peers, devices, conflicts, log, resolve
 * --take NAME) with one short id (…+8 characters); devices and peers agree on last seen; the
 * device limit set by `kitsync devices limit N`, `pair` warning when the workspace is full, and
 * `devices` saying who counts. Real peers through the CLI on loopback.
 */

const DEADLINE = 20_000
const { peer, invite, forget } = devicesOfTest()

interface Seen {
  peerId: string
  name: string
  lastSeen?: number
}

describe('device names and the device limit', () => {
  it('devices limit N, the pair warning when full, and who counts', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(ha, ['init'])
    await peer(ha, NET)
    expectCliError(await kitsync(ha, ['devices', 'limit', '0']), 'INVALID_ARGUMENT', 2)
    expectCliError(await kitsync(ha, ['devices', 'limit', 'two']), 'INVALID_ARGUMENT', 2)
    const set = await kitsyncJson<{ maxDevices: number; previous: number; counted: { name: string }[] }>(ha, ['devices', 'limit', '2'])
    expect(set).toMatchObject({ maxDevices: 2, previous: 5 })
    // Room for one more: no warning.
    const first = await kitsyncJson<{ token: string; warning?: string }>(ha, ['pair'])
    expect(first.warning).toBeUndefined()
    await kitsyncOk(hb, ['join', first.token, '--name', 'phone', ...NET])
    const aName = (await kitsyncJson<{ name: string; self: boolean }[]>(ha, ['devices'])).find((d) => d.self)?.name
    expect(aName).toBeTypeOf('string')
    const who = await kitsyncJson<{ maxDevices: number; counted: { name: string }[] }>(ha, ['devices', 'limit'])
    expect(who.maxDevices).toBe(2)
    expect(who.counted.map((d) => d.name).sort()).toEqual([aName, 'phone'].sort())
    // Full now: the token is still issued, with a warning (stderr in text, a field with --json).
    const text = await kitsync(ha, ['pair', '--qr', 'none'])
    expect(text.code).toBe(0)
    expect(text.stderr).toContain('kitsync: warning: the workspace is full (2 of 2 devices)')
    expect(text.stderr).toContain('kitsync devices limit 3')
    expect(text.stdout).toContain('ks1')
    const full = await kitsyncJson<{ token: string; warning?: string }>(ha, ['pair'])
    expect(full.warning).toContain('DEVICE_LIMIT_EXCEEDED')
    // The running peer reads the limit at each join: a third device is refused, then let in after `devices limit 3`.
    const hc = await makeHome()
    expectCliError(await kitsync(hc, ['join', full.token, '--name', 'tablet', ...NET]), 'DEVICE_LIMIT_EXCEEDED', 9)
    const listed = await kitsyncOk(ha, ['devices'])
    expect(listed).toContain('2 of 2 devices count toward the limit')
    expect(listed).toMatch(new RegExp(`: (${aName}, phone|phone, ${aName})\\n`))
    expect((await kitsyncJson<{ maxDevices: number; previous: number }>(ha, ['devices', 'limit', '3'])).previous).toBe(2)
    const room = await kitsyncJson<{ token: string; warning?: string }>(ha, ['pair'])
    expect(room.warning).toBeUndefined()
    await kitsyncOk(hc, ['join', room.token, '--name', 'tablet', ...NET])
    expect(await kitsyncOk(ha, ['devices', 'limit'])).toContain('device limit 3; 3 device(s) count (full: a new device is refused)')
  })

  it('names and one short id in peers, devices, log and conflicts; resolve --take NAME; devices and peers agree on last seen', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(ha, ['init'])
    await peer(ha, NET)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
    const aName = (await kitsyncJson<{ name: string; self: boolean }[]>(ha, ['devices'])).find((d) => d.self)?.name ?? ''
    let pb = await peer(hb, NET)
    const bId = pb.started.deviceId
    const short = '…' + bId.slice(-8)
    await kitsyncOk(ha, ['collection', 'set', 'cards', '--policy', 'ask'])
    await kitsyncOk(ha, ['set', 'cards', 'x', '1'])
    await waitUntil(async () => ((await kitsync(hb, ['get', 'cards', 'x'])).code === 0 ? true : undefined), DEADLINE, 'the first write on B')

    const peersText = await kitsyncOk(ha, ['peers'])
    expect(peersText).toMatch(new RegExp(`${short}\\s+phone\\s+connected`))
    expect(peersText).not.toContain('…' + bId.slice(-12))
    expect(await kitsyncOk(ha, ['devices'])).toMatch(new RegExp(`${short}\\s+phone\\s+trusted`))
    // Both read the same last seen.
    const seenPeers = (await kitsyncJson<Seen[]>(ha, ['peers'])).find((d) => d.peerId === bId)
    const seenDevices = (await kitsyncJson<Seen[]>(ha, ['devices'])).find((d) => d.peerId === bId)
    expect(seenPeers?.lastSeen).toBeTypeOf('number')
    expect(Math.abs((seenDevices?.lastSeen ?? 0) - (seenPeers?.lastSeen ?? 0))).toBeLessThan(5_000)
    expect(await kitsyncOk(ha, ['log'])).toContain(`phone (${short})`)

    // A conflict: both write the record while B's peer is stopped.
    await stopProc(pb.proc)
    forget(pb)
    await kitsyncOk(hb, ['set', 'cards', 'x', '"from phone"'])
    await kitsyncOk(ha, ['set', 'cards', 'x', '"from a"'])
    pb = await peer(hb, NET)
    const [conflict] = await waitUntil(
      async () => {
        const list = await kitsyncJson<{ id: string; versions: { device: string; name?: string; value: unknown }[] }[]>(ha, ['conflicts'])
        return list.length === 1 ? list : undefined
      },
      DEADLINE,
      'the conflict on A',
    )
    expect(conflict?.versions.map((v) => v.name).sort()).toEqual([aName, 'phone'].sort())
    expect(await kitsyncOk(ha, ['conflicts'])).toContain(`phone (${bId.slice(-8)})`)
    expectCliError(await kitsync(ha, ['resolve', 'cards', conflict?.id ?? '', '--take', 'nobody']), 'INVALID_ARGUMENT', 2)
    await kitsyncOk(ha, ['resolve', 'cards', conflict?.id ?? '', '--take', 'phone'])
    expect(JSON.parse(await kitsyncOk(ha, ['get', 'cards', 'x', '--json']))).toBe('from phone')
  })
})
