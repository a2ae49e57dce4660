import { describe, expect, it } from 'vitest'
import { COMMAND_TIMEOUT_MS, kitsyncOk, makeHome, spawnKitsync, stopProc, type Proc } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 23, rough edges: `kitsync watch --events` also prints the sync events (a device
 * connecting, updates merged, going offline, ...) as JSON lines with an `event` field; plain
 * `watch` prints only the changes, as before. Two real peers on loopback.
 */

const DEADLINE = 20_000
const { peer, invite, forget } = devicesOfTest()

/** Write probes through the peer until the watcher prints one: from then on it is subscribed. */
async function waitUntilWatching(home: string, watcher: Proc, tag: string): Promise<void> {
  let seen = false
  const first = watcher
    .waitForLine((l) => l.includes(tag), COMMAND_TIMEOUT_MS, `a change line of ${tag}`)
    .finally(() => {
      seen = true
    })
  for (let i = 0; !seen; i++) {
    await kitsyncOk(home, ['set', 'probes', `${tag}-${i}`, String(i)])
    await Promise.race([first, new Promise((r) => setTimeout(r, 100))])
  }
  await first
}

type Line = Record<string, unknown>

function parsed(proc: Proc): Line[] {
  return proc.lines.map((l) => JSON.parse(l) as Line)
}

describe('watch --events', () => {
  it('prints sync events as JSON lines with an event field; plain watch only changes', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
    const events = spawnKitsync(ha, ['watch', '--events'])
    const plain = spawnKitsync(ha, ['watch'])
    await waitUntilWatching(ha, events, 'ev')
    await waitUntilWatching(ha, plain, 'pl')

    const pb = await peer(hb)
    const bId = pb.started.deviceId
    const isEvent =
      (name: string, extra: (e: Line) => boolean = () => true) =>
      (l: string) => {
        const e = JSON.parse(l) as Line
        return e.event === name && e.peerId === bId && extra(e)
      }
    await events.waitForLine(isEvent('sync:connected'), DEADLINE, 'sync:connected of B')
    await kitsyncOk(hb, ['set', 'notes', 'from-b', '"hi"'])
    await events.waitForLine(
      isEvent('sync:update', (e) => e.collection === 'notes'),
      DEADLINE,
      'sync:update of notes from B',
    )
    const change = JSON.parse(await events.waitForLine((l) => l.includes('"from-b"'), DEADLINE, 'the change from B')) as Line
    expect(change).toMatchObject({ event: 'change', collection: 'notes', key: 'from-b', op: 'set', value: 'hi', source: 'remote' })
    await plain.waitForLine((l) => l.includes('"from-b"'), DEADLINE, 'the change from B in plain watch')
    await stopProc(pb.proc)
    forget(pb)
    await events.waitForLine(isEvent('sync:offline'), DEADLINE, 'sync:offline of B')

    await stopProc(events)
    await stopProc(plain)
    for (const e of parsed(events)) expect(typeof e.event, JSON.stringify(e)).toBe('string')
    const plainLines = parsed(plain)
    expect(plainLines.filter((e) => 'event' in e)).toEqual([])
    expect(plainLines.some((e) => e.key === 'from-b' && e.source === 'remote')).toBe(true)
  })
})
