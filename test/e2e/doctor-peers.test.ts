/**
 * `kitsync doctor`'s checks against connected devices, through real peers on loopback. Clock:
 * each peer measures the clocks of the devices it is connected to (/kitsync/clock/1.0.0), and
 * doctor fails, naming the device, when one is more than 2 s off; the wrong clock is a real
 * peer process whose Date.now is shifted by a preload (test/fixtures/skewed-clock.mjs). Relay:
 * the reservation on a VPS peer started with --relay, named.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLI, FIXTURES, kitsync, kitsyncJson, kitsyncOk, makeHome, Proc, START_TIMEOUT_MS, stopProc, waitUntil, type CliResult } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

const DEADLINE = 20_000
const SKEW_MS = 5_000
const { peer, invite, forget } = devicesOfTest()

interface Check {
  name: string
  ok: boolean
  message: string
  skipped?: boolean
}

const checkOf = (r: CliResult, name: string): Check => {
  const found = (JSON.parse(r.stdout) as { checks: Check[] }).checks.find((c) => c.name === name)
  if (found === undefined) throw new Error(`no ${name} check in ${r.stdout}`)
  return found
}
const clockCheck = (r: CliResult): Check => checkOf(r, 'clock')

/** `kitsync peer start` in a process whose clock is `skewMs` ahead. */
async function skewedPeer(home: string, skewMs: number): Promise<Proc> {
  const proc = new Proc(process.execPath, ['--import', join(FIXTURES, 'skewed-clock.mjs'), CLI, '--home', home, 'peer', 'start', '--json', ...NET], {
    env: { KITSYNC_TEST_CLOCK_SKEW_MS: String(skewMs) },
  })
  await proc.waitForLine((l) => l.includes('"event":"started"'), START_TIMEOUT_MS, "the skewed peer's started line")
  return proc
}

/** Wait until the peer of `home` has measured the clock of `device`; its offset. */
async function measured(home: string, device: string): Promise<number> {
  return waitUntil(
    async () => {
      const s = await kitsyncJson<{ network?: { clocks?: { device: string; offsetMs: number; rttMs: number }[] } }>(home, ['status', '--json'])
      return s.network?.clocks?.find((c) => c.device === device)?.offsetMs
    },
    DEADLINE,
    `the clock of ${device} measured by ${home}`,
  )
}

describe('doctor: checks against connected devices', () => {
  it('fails naming the device whose clock is 5 s ahead (and on it, the one behind); passes once the clocks agree', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, NET)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
    const idOf = async (home: string): Promise<string> => (await kitsyncJson<{ info: { deviceId: string } }>(home, ['status', '--json'])).info.deviceId
    const [a, b] = [await idOf(ha), await idOf(hb)]
    const skewed = await skewedPeer(hb, SKEW_MS)
    try {
      const offset = await measured(ha, b)
      expect(Math.abs(offset - SKEW_MS)).toBeLessThan(500)
      const r = await kitsync(ha, ['doctor', '--json'])
      const c = clockCheck(r)
      expect(c.ok).toBe(false)
      expect(c.message).toMatch(new RegExp(`^clock skew over 2 s with phone \\(…${b.slice(-8)}\\) \\(5\\.\\d s\\) ahead of this device: .*NTP`))
      expect(r.code).toBe(11)
      // The other side sees this device behind.
      expect(await measured(hb, a)).toBeLessThan(-SKEW_MS + 500)
      expect(clockCheck(await kitsync(hb, ['doctor', '--json'])).message).toMatch(/\(-5\.\d s\) behind this device/)
    } finally {
      await stopProc(skewed)
    }

    // B's clock right again: measured at its next connection, and the check passes.
    const pb = await peer(hb, NET)
    await waitUntil(async () => (Math.abs(await measured(ha, b)) < 500 ? true : undefined), DEADLINE, 'the clock of B measured again')
    const ok = clockCheck(await kitsync(ha, ['doctor', '--json']))
    expect(ok).toMatchObject({ ok: true, message: expect.stringMatching(/^clocks agree within 2 s with 1 connected device\(s\) \(largest offset \d+ ms\)$/) })
    expect(ok.skipped).toBeUndefined()
    await stopProc(pb.proc)
    forget(pb)
  })

  it('relay: skipped with no relay connected; with the VPS relay as bootstrap, the reservation there is held and named', async () => {
    const [ha, hv] = [await makeHome(), await makeHome()]
    let pa = await peer(ha, NET)
    expect(checkOf(await kitsync(ha, ['doctor', '--json']), 'relay')).toMatchObject({ ok: true, skipped: true, message: expect.stringContaining('no relay') })
    await kitsyncOk(hv, ['join', await invite(ha, ['--untrusted']), '--name', 'vps', ...NET])
    const pv = await peer(hv, ['--relay', ...NET])
    const relayAddress = (pv.started as typeof pv.started & { listen: string[] }).listen.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/')) ?? ''
    expect(relayAddress).toContain(`/p2p/${pv.started.deviceId}`)
    await stopProc(pa.proc)
    forget(pa)
    pa = await peer(ha, [...NET, '--bootstrap', relayAddress])
    await waitUntil(
      async () =>
        (await kitsyncJson<{ network?: { listen: string[] } }>(ha, ['status', '--json'])).network?.listen.some((a) =>
          a.includes(`/p2p/${pv.started.deviceId}/p2p-circuit`),
        )
          ? true
          : undefined,
      DEADLINE,
      'a reservation of A on the relay',
    )
    const relay = checkOf(await kitsync(ha, ['doctor', '--json']), 'relay')
    expect(relay).toEqual({
      name: 'relay',
      ok: true,
      message: `reservation held on vps (…${pv.started.deviceId.slice(-8)}): devices on other networks reach this one through it`,
    })
  })
})
