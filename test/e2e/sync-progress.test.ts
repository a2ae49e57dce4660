import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { SyncProgressEvent } from '../../dist/index.js'
import { CLI, COMMAND_TIMEOUT_MS, kitsync, makeHome, spawnKitsync, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 23: progress of long joins and catch-ups. A join emits sync:progress events (library and
 * control API) that end at done == total; `kitsync join` on a terminal draws them as a bar on
 * stderr, and into a pipe draws nothing. Real peers on loopback; the terminal is a real pty
 * (util-linux `script`).
 */

const DEADLINE = 20_000
const { peer, client, invite } = devicesOfTest()
const run = promisify(execFile)

const APP_COLLECTIONS = ['alerts', 'journal', 'notes', 'todo', 'watchlists', 'settings']

describe('sync:progress', () => {
  it('a join emits progress ending at done == total; on a terminal join draws a bar, into a pipe nothing', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    const pa = await peer(ha)
    const inviter = pa.started.deviceId
    const a = await client(ha)
    for (const name of APP_COLLECTIONS.filter((n) => n !== 'alerts' && n !== 'watchlists')) {
      for (let i = 0; i < 50; i++) await a.set(name, `k${i}`, `value ${i} of ${name} `.repeat(20))
    }
    await a.set('alerts', 'btc', { symbol: 'BTC', above: 100000 })
    await a.set('watchlists', 'tech', { symbols: ['AAPL'] })

    // Library: the events of the joining device's peer, through its control socket.
    await peer(hb)
    const b = await client(hb)
    const events: SyncProgressEvent[] = []
    b.on('sync:progress', (e) => events.push(e))
    await b.info() // the subscription is in place once this answers
    const piped = await kitsync(hb, ['join', await invite(ha), '--name', 'bee'])
    expect(piped.code, piped.stderr).toBe(0)
    expect(piped.stderr).not.toContain('copying [') // not a terminal: no bar
    const fromInviter = (): SyncProgressEvent[] => events.filter((e) => e.device === inviter)
    await waitUntil(async () => (fromInviter().some((e) => e.done === e.total) ? true : undefined), DEADLINE, 'a last sync:progress event')
    const seen = fromInviter()
    const last = seen.find((e) => e.done === e.total) as SyncProgressEvent
    // every app collection and kitsync's own were exchanged in this one round
    expect(last.total).toBeGreaterThanOrEqual(APP_COLLECTIONS.length)
    expect(last.bytes).toBeGreaterThan(APP_COLLECTIONS.length * 1000)
    expect(last).toMatchObject({ peerId: inviter, collectionsDone: last.done, collectionsTotal: last.total, bytesIn: last.bytes })
    expect(typeof last.collection).toBe('string')
    for (let i = 1; i < seen.length; i++) {
      if ((seen[i] as SyncProgressEvent).total !== (seen[i - 1] as SyncProgressEvent).total) continue // a later exchange
      expect((seen[i] as SyncProgressEvent).done).toBeGreaterThanOrEqual((seen[i - 1] as SyncProgressEvent).done)
    }
    // cheap: the 200 ms throttle keeps a round to a handful of events, not one per collection or update
    expect(seen.length).toBeLessThanOrEqual(2 + 2 * last.total)
    expect(await b.get('notes', 'k49')).toBe(`value 49 of notes `.repeat(20))

    // A terminal (a real pty): the bar on stderr, ending full.
    const token = await invite(ha)
    const command = [process.execPath, CLI, '--home', hc, 'join', token, '--name', 'sea', ...NET].map((a) => `'${a}'`).join(' ')
    const { stdout } = await run('script', ['-qec', command, '/dev/null'], { timeout: COMMAND_TIMEOUT_MS })
    const bars = [...stdout.matchAll(/copying \[([#-]{24})\] (\d+)\/(\d+) collections, [\d.]+ (?:B|KiB|MiB)/g)]
    expect(bars.length, stdout).toBeGreaterThan(0)
    const full = bars.at(-1) as RegExpMatchArray
    expect(full[1]).toBe('#'.repeat(24))
    expect(full[2]).toBe(full[3])
    expect(Number(full[3])).toBeGreaterThanOrEqual(APP_COLLECTIONS.length)
    expect(stdout).toContain('\r')
    expect(stdout).toMatch(/joined workspace/)

    // The same through a running peer of the new device (the bar follows its events).
    const hd = await makeHome()
    await peer(hd)
    const viaPeer = [process.execPath, CLI, '--home', hd, 'join', await invite(ha), '--name', 'dee'].map((a) => `'${a}'`).join(' ')
    const shown = (await run('script', ['-qec', viaPeer, '/dev/null'], { timeout: COMMAND_TIMEOUT_MS })).stdout
    const viaBar = [...shown.matchAll(/copying \[([#-]{24})\] (\d+)\/(\d+) collections/g)].at(-1)
    expect(viaBar?.[2], shown).toBe(viaBar?.[3])
    expect(Number(viaBar?.[3])).toBeGreaterThanOrEqual(APP_COLLECTIONS.length)

    // A catch-up in a foreground peer (human output): a line when it ends, with the figures.
    await a.set('notes', 'later', 'written while the new device was down')
    const pc = spawnKitsync(hc, ['peer', 'start', ...NET, '--http-port', '0'])
    try {
      const synced = await pc.waitForLine((l) => l.includes(`synced    ${inviter}`), DEADLINE, 'the synced line of the catch-up')
      expect(synced).toMatch(/^\d\d:\d\d:\d\d synced {4}\S+ \(\S+\): \d+ collections, [\d.]+ (?:B|KiB|MiB) in$/)
    } finally {
      await stopProc(pc)
    }
  })

  it('sync now on a terminal draws a bar over the exchange, ending full; --json and a pipe get the report alone', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, NET)
    const a = await client(ha)
    for (const name of ['journal', 'notes', 'todo', 'settings', 'drafts', 'misc']) await a.set(name, 'k', `value of ${name} `.repeat(50))
    await kitsync(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    await peer(hb, NET)
    await waitUntil(async () => ((await kitsync(hb, ['get', 'misc', 'k'])).code === 0 ? true : undefined), DEADLINE, 'the copy on B')

    const now = (json: boolean): string => [process.execPath, CLI, '--home', ha, 'sync', 'now', ...(json ? ['--json'] : [])].map((x) => `'${x}'`).join(' ')
    const { stdout } = await run('script', ['-qec', now(false), '/dev/null'], { timeout: COMMAND_TIMEOUT_MS })
    const bars = [...stdout.matchAll(/syncing \[([#-]{24})\] (\d+)\/(\d+) collections, [\d.]+ (?:B|KiB|MiB)/g)]
    expect(bars.length, stdout).toBeGreaterThan(0)
    const full = bars.at(-1) as RegExpMatchArray
    expect(full[1]).toBe('#'.repeat(24))
    expect(full[2]).toBe(full[3])
    expect(Number(full[3])).toBeGreaterThanOrEqual(APP_COLLECTIONS.length)
    // The bar's line is ended before the report.
    expect(stdout).toMatch(/collections, [\d.]+ (?:B|KiB|MiB) *\r?\nsync now: 1 of 1 device reached in \d+ ms/)

    // --json on the same terminal: the report alone, as before.
    const json = (await run('script', ['-qec', now(true), '/dev/null'], { timeout: COMMAND_TIMEOUT_MS })).stdout
    expect(json).not.toContain('syncing [')
    const report = JSON.parse(json.trim()) as { peers: { reached: boolean; collections: number }[] }
    expect(Object.keys(report).sort()).toEqual(['ms', 'peers', 'startedAt'])
    expect(report.peers).toHaveLength(1)
    expect(report.peers[0]).toMatchObject({ reached: true })
    expect(report.peers[0]?.collections).toBeGreaterThanOrEqual(APP_COLLECTIONS.length)
    // Into a pipe: no bar.
    const piped = await kitsync(ha, ['sync', 'now'])
    expect(piped.code, piped.stderr).toBe(0)
    expect(piped.stderr).not.toContain('syncing [')
    expect(piped.stdout).toMatch(/^sync now: 1 of 1 device reached/)
  })
})
