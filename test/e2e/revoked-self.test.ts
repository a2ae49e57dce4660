import { describe, expect, it } from 'vitest'
import type { WorkspaceEvents } from '../../dist/index.js'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, spawnKitsync, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * The revoked device is told: three real peers on loopback, one revoked while all run. The
 * members refuse it with a signed REVOKED notice; it checks the signature against the members it
 * knows, records that it is revoked, says so (event, status, peers, exit codes) and stops dialling.
 */

const DEADLINE = 20_000
const { peer, client, invite, forget } = devicesOfTest()

interface PeerRow {
  peerId: string
  name: string
  state: string
}

async function refused(home: string): Promise<number> {
  return (await kitsyncJson<{ network?: { refusedConnections: number } }>(home, ['status', '--json'])).network?.refusedConnections ?? 0
}

describe('a revoked device is told', () => {
  it('learns it is revoked from a signed notice, shows it everywhere, and stops dialling', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
    await kitsyncOk(hc, ['join', await invite(ha), '--name', 'laptop', ...NET])
    const pb = await peer(hb)
    await peer(hc)
    const [b, c] = [await client(hb), await client(hc)]
    const bId = pb.started.deviceId
    const cId = (await c.info()).deviceId
    await b.set('notes', 'before', 1)
    await waitUntil(async () => ((await c.get('notes', 'before').catch(() => undefined)) !== undefined ? true : undefined), DEADLINE, 'C to get B\u2019s note')

    const told = new Promise<WorkspaceEvents['device:revoked-self']>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no device:revoked-self on B within ${DEADLINE} ms\n${pb.proc.transcript()}`)), DEADLINE)
      b.on('device:revoked-self', (e) => {
        clearTimeout(timer)
        resolve(e)
      })
    })
    const watch = spawnKitsync(hb, ['watch'])
    // watch is subscribed once it prints a change made after it started.
    let n = 0
    await waitUntil(
      async () => {
        await b.set('notes', 'watched', ++n)
        return watch.lines.some((l) => l.includes('"watched"')) ? true : undefined
      },
      DEADLINE,
      'watch to print a change',
    )
    await kitsyncOk(hc, ['revoke', 'phone', '--reason', 'lost'])
    const event = await told
    expect(event).toMatchObject({ revokedBy: cId, reason: 'lost' })
    await pb.proc.waitForLine((l) => l.includes('"device:revoked-self"'), DEADLINE, 'B\u2019s peer to print the event')
    const watched = JSON.parse(await watch.waitForLine((l) => l.includes('"device:revoked-self"'), DEADLINE, 'watch to print the event')) as Record<
      string,
      unknown
    >
    expect(watched).toMatchObject({ event: 'device:revoked-self', revokedBy: cId, reason: 'lost' })
    await stopProc(watch)
    const toldAt = pb.proc.lines.findIndex((l) => l.includes('"device:revoked-self"'))

    // status and peers on B say so; no member shows as connected.
    const status = await kitsyncJson<{ revoked?: { revokedBy: string; reason?: string } }>(hb, ['status', '--json'])
    expect(status.revoked).toMatchObject({ revokedBy: cId, reason: 'lost' })
    expect(await kitsyncOk(hb, ['status'])).toMatch(/revoked/)
    const bPeers = await kitsyncJson<PeerRow[]>(hb, ['peers', '--json'])
    expect(bPeers.find((d) => d.peerId === bId)?.state).toBe('revoked')
    expect(
      bPeers.filter((d) => d.state === 'connected'),
      JSON.stringify(bPeers),
    ).toEqual([])
    // Network commands fail with DEVICE_REVOKED (exit 9), also after the peer restarts.
    expectCliError(await kitsync(hb, ['sync', 'now']), 'DEVICE_REVOKED', 9)

    // The members list B as revoked.
    for (const home of [ha, hc]) {
      const rows = await kitsyncJson<PeerRow[]>(home, ['peers', '--json'])
      expect(rows.find((d) => d.peerId === bId)?.state).toBe('revoked')
    }

    // B no longer dials: the members refuse nothing more from it. A device that still redials
    // comes back within the first backoff steps (0.5, 1, 2 s, ±25%) and is refused each time;
    // an absence can only be seen over a window, here 4 s (past the third attempt).
    const before = [await refused(ha), await refused(hc)]
    const window = Date.now() + 4000
    await waitUntil(async () => (Date.now() > window ? true : undefined), 6000, 'the observation window')
    expect([await refused(ha), await refused(hc)]).toEqual(before)
    // and B's peer no longer loops connected / offline.
    expect(pb.proc.lines.slice(toldAt + 1).filter((l) => l.includes('"sync:connected"'))).toEqual([])
  }, 120_000)

  it('a device revoked while it was off is told by the first member it dials, and stays revoked after a restart', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    const pa = await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'tablet', ...NET])
    const aId = pa.started.deviceId
    // B is not running: it cannot have heard of its revocation through sync.
    await kitsyncOk(ha, ['revoke', 'tablet', '--reason', 'stolen'])
    const pb = await peer(hb)
    const line = await pb.proc.waitForLine((l) => l.includes('"device:revoked-self"'), DEADLINE, 'B to be told it is revoked')
    expect(JSON.parse(line)).toMatchObject({ event: 'device:revoked-self', revokedBy: aId, reason: 'stolen', toldBy: aId })
    expectCliError(await kitsync(hb, ['sync', 'now']), 'DEVICE_REVOKED', 9)
    // Restarted, it dials no one and says at once that it is revoked.
    await stopProc(pb.proc)
    forget(pb)
    const refusedBefore = await refused(ha)
    const again = await peer(hb)
    const status = await kitsyncJson<{ revoked?: { toldBy?: string } }>(hb, ['status', '--json'])
    expect(status.revoked?.toldBy).toBe(aId)
    expectCliError(await kitsync(hb, ['sync', 'now']), 'DEVICE_REVOKED', 9)
    expect(again.proc.stdout).not.toContain('sync:connected')
    expect(await refused(ha)).toBe(refusedBefore)
  }, 120_000)
})
