import { describe, expect, it } from 'vitest'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 23: `kitsync sync pause [--for DURATION]` / `kitsync sync resume`. Two real peers on
 * loopback: while B is paused nothing moves either way (B's counters show no frame from A),
 * writes go on on both sides, and on resume both arrive; `--for` resumes by itself; status
 * and the library show the pause; a restarted peer stays paused.
 */

const DEADLINE = 20_000
/** How long a paused device is watched for frames: many times what a live update takes on loopback. */
const QUIET_MS = 3_000
const { peer, client, invite, forget } = devicesOfTest()

interface Stats {
  peers: Record<string, { framesIn: number; bytesIn: number }>
}
interface Status {
  paused?: { since: number; until?: number }
}

async function value(home: string, collection: string, key: string): Promise<unknown> {
  const r = await kitsync(home, ['get', collection, key, '--json'])
  return r.code === 0 ? (JSON.parse(r.stdout) as unknown) : undefined
}

async function pair(): Promise<{ ha: string; hb: string; aId: string; pb: RunningPeer }> {
  const [ha, hb] = [await makeHome(), await makeHome()]
  const pa = await peer(ha, NET)
  await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
  const pb = await peer(hb, NET)
  // Connected and exchanging: a write on A reaches B.
  await kitsyncOk(ha, ['set', 'notes', 'warm', '1'])
  await waitUntil(async () => ((await value(hb, 'notes', 'warm')) === 1 ? true : undefined), DEADLINE, 'the first write on B')
  return { ha, hb, aId: pa.started.deviceId, pb }
}

describe('sync pause / resume', () => {
  it('exchanges nothing while paused, both ways; on resume both writes arrive', async () => {
    const { ha, hb, aId } = await pair()
    const out = await kitsyncOk(hb, ['sync', 'pause'])
    expect(out).toContain('sync paused until kitsync sync resume')
    const status = await kitsyncJson<Status>(hb, ['status', '--json'])
    expect(status.paused?.since).toBeTypeOf('number')
    expect(status.paused?.until).toBeUndefined()
    expect(await kitsyncOk(hb, ['status'])).toContain('paused since')

    const framesFromA = async (): Promise<number> => (await kitsyncJson<Stats>(hb, ['stats', '--json'])).peers[aId]?.framesIn ?? 0
    const before = await framesFromA()
    // Local writes go on on both sides.
    await kitsyncOk(ha, ['set', 'notes', 'from-a', '"a"'])
    await kitsyncOk(hb, ['set', 'notes', 'from-b', '"b"'])
    // `sync now` says why it cannot exchange.
    expectCliError(await kitsync(hb, ['sync', 'now', '--timeout', '2']), 'SYNC_PAUSED', 7)
    const quietUntil = Date.now() + QUIET_MS
    while (Date.now() < quietUntil) {
      expect(await value(hb, 'notes', 'from-a')).toBeUndefined()
      expect(await value(ha, 'notes', 'from-b')).toBeUndefined()
      await new Promise((r) => setTimeout(r, 250))
    }
    expect(await framesFromA()).toBe(before)

    expect(await kitsyncOk(hb, ['sync', 'resume'])).toContain('sync resumed')
    expect((await kitsyncJson<Status>(hb, ['status', '--json'])).paused).toBeUndefined()
    await waitUntil(async () => ((await value(hb, 'notes', 'from-a')) === 'a' ? true : undefined), DEADLINE, 'the write of A on B')
    await waitUntil(async () => ((await value(ha, 'notes', 'from-b')) === 'b' ? true : undefined), DEADLINE, 'the write of B on A')
    // Live again: a marker written after resume arrives as well.
    await kitsyncOk(ha, ['set', 'notes', 'marker', '2'])
    await waitUntil(async () => ((await value(hb, 'notes', 'marker')) === 2 ? true : undefined), DEADLINE, 'the marker on B')
    expect(await kitsyncOk(hb, ['sync', 'resume'])).toContain('sync was not paused')
  })

  it('--for resumes by itself (sync:paused / sync:resumed through the library); bad durations refused', async () => {
    const { ha, hb } = await pair()
    expectCliError(await kitsync(hb, ['sync', 'pause', '--for', '10 minutes']), 'INVALID_ARGUMENT', 2)
    expectCliError(await kitsync(hb, ['sync', 'pause', '--for', '0s']), 'INVALID_ARGUMENT', 2)
    const ws = await client(hb)
    const events: string[] = []
    const resumed = new Promise<{ by: string }>((resolve) => ws.on('sync:resumed', resolve))
    ws.on('sync:paused', () => events.push('paused'))
    const pause = await kitsyncJson<{ since: number; until: number }>(hb, ['sync', 'pause', '--for', '2s', '--json'])
    expect(pause.until - pause.since).toBe(2000)
    expect((await ws.status()).paused).toEqual(pause)
    await kitsyncOk(ha, ['set', 'notes', 'during', '"x"'])
    const r = await Promise.race([resumed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no sync:resumed in time')), DEADLINE))])
    expect(r.by).toBe('timer')
    expect(events).toEqual(['paused'])
    expect(Date.now()).toBeGreaterThanOrEqual(pause.until)
    expect((await ws.status()).paused).toBeUndefined()
    await waitUntil(async () => ((await value(hb, 'notes', 'during')) === 'x' ? true : undefined), DEADLINE, 'the write of A after the pause')
  })

  it('a restarted peer stays paused until resume (the pause is kept in the local store)', async () => {
    const { ha, hb, aId, pb } = await pair()
    const ws = await client(hb)
    await ws.pause()
    await ws.close()
    forget(ws)
    await stopProc(pb.proc)
    forget(pb)
    const framesFromA = async (): Promise<number> => (await kitsyncJson<Stats>(hb, ['stats', '--json'])).peers[aId]?.framesIn ?? 0
    const saved = await framesFromA()
    await kitsyncOk(ha, ['set', 'notes', 'while-down', '"d"'])
    await peer(hb, NET)
    expect((await kitsyncJson<Status>(hb, ['status', '--json'])).paused).toBeDefined()
    const quietUntil = Date.now() + QUIET_MS
    while (Date.now() < quietUntil) {
      expect(await value(hb, 'notes', 'while-down')).toBeUndefined()
      await new Promise((r) => setTimeout(r, 250))
    }
    expect(await framesFromA()).toBe(saved)
    await kitsyncOk(hb, ['sync', 'resume'])
    await waitUntil(async () => ((await value(hb, 'notes', 'while-down')) === 'd' ? true : undefined), DEADLINE, 'the write of A after resume')
  })
})
