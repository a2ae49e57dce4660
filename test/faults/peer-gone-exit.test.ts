import { describe, expect, it } from 'vitest'
import {
  COMMAND_TIMEOUT_MS,
  expectCliError,
  expectJsonCliError,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  spawnKitsync,
  stopProc,
  type Proc,
} from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 19, item 14: `kitsync watch` ended with exit 0 and no word when the peer it watched
 * through stopped, and `kitsync sync now` exited 0 when it reached none of the devices. A
 * script took both for success. Real processes: peers started with the CLI, on loopback.
 */

const { peer, invite } = devicesOfTest()

/** Write probes through the peer until the watcher prints one: from then on it is subscribed. */
async function waitUntilWatching(home: string, watcher: Proc): Promise<void> {
  let seen = false
  const first = watcher
    .waitForLine(() => true, COMMAND_TIMEOUT_MS, 'a first change line')
    .finally(() => {
      seen = true
    })
  for (let i = 0; !seen; i++) {
    await kitsyncOk(home, ['set', 'notes', `probe-${i}`, String(i)])
    await Promise.race([first, new Promise((r) => setTimeout(r, 100))])
  }
  await first
}

describe('watch says why it ended', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)('the peer stops (%s): one error line with a code, non-zero exit', async (signal) => {
    const home = await makeHome()
    const p = await peer(home)
    const watcher = spawnKitsync(home, ['watch'])
    await waitUntilWatching(home, watcher)
    await stopProc(p.proc, signal)
    const exit = await watcher.waitForExit(COMMAND_TIMEOUT_MS)
    expect({ exit, stderr: watcher.stderr }).toMatchObject({
      exit: { code: 6, signal: null },
      stderr: expect.stringMatching(/^kitsync: CONNECTION_CLOSED: [^\n]*peer[^\n]*\n$/),
    })
  })

  it('an interrupted watch still exits 0 without a message', async () => {
    const home = await makeHome()
    await peer(home)
    const watcher = spawnKitsync(home, ['watch'])
    await waitUntilWatching(home, watcher)
    expect(await stopProc(watcher)).toEqual({ code: 0, signal: null })
    expect(watcher.stderr).toBe('')
  })
})

describe('sync now that reaches no device', () => {
  it('fails with PEER_UNREACHABLE (exit 7) when none of the devices was reached; some reached is exit 0', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET]) // its peer never runs
    const message = expectCliError(await kitsync(ha, ['sync', 'now', '--timeout', '5']), 'PEER_UNREACHABLE', 7)
    expect(message).toMatch(/none of the 1 device/)
    expect(message).toContain('bee')
    const json = expectJsonCliError(await kitsync(ha, ['sync', 'now', '--timeout', '5', '--json']), 'PEER_UNREACHABLE', 7)
    expect(json.details?.peers).toEqual([expect.objectContaining({ name: 'bee', reached: false })])

    // One of two reached: exit 0, the report names the one that was not.
    await kitsyncOk(hc, ['join', await invite(ha), '--name', 'sea', ...NET])
    await peer(hc)
    const report = await kitsyncJson<{ peers: { name: string; reached: boolean }[] }>(ha, ['sync', 'now', '--timeout', '5'])
    expect(report.peers.map((p) => [p.name, p.reached]).sort()).toEqual([
      ['bee', false],
      ['sea', true],
    ])
  })
})
