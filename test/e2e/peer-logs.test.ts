/**
 * The log of a detached peer, through real processes: `--log-level` decides what is written
 * (debug lines only at debug), the file rotates at `--log-max-size` keeping `--log-keep` files,
 * all 0600, while the peer goes on writing the current one, and `peer logs` shows each line with
 * its time first.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  cleanup,
  fileMode,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  spawnKitsync,
  START_TIMEOUT_MS,
  statOrUndefined,
  stopProc,
  STOP_TIMEOUT_MS,
  waitUntil,
  killPids,
} from '../helpers/cli.js'

const LOOPBACK = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']
const started = new Set<number>()

afterEach(async () => {
  await killPids(started)
  await cleanup()
})

async function startDetached(home: string, args: string[]): Promise<number> {
  const { pid } = await kitsyncJson<{ pid: number }>(home, ['peer', 'start', '--detach', ...LOOPBACK, ...args])
  started.add(pid)
  return pid
}

interface Entry {
  event?: string
  level?: number
  key?: string
  peerId?: string
  device?: string
}

const entries = (text: string): Entry[] =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Entry)

describe('the log of a detached peer', () => {
  it('writes debug lines only at --log-level debug', async () => {
    const quiet = await makeHome()
    const verbose = await makeHome()
    await startDetached(quiet, [])
    await startDetached(verbose, ['--log-level', 'debug'])
    for (const home of [quiet, verbose]) {
      await kitsyncOk(home, ['set', 'notes', 'k1', '1'])
      await kitsyncOk(home, ['sync', 'pause', '--for', '1h'])
      await kitsyncOk(home, ['sync', 'resume'])
      await kitsyncOk(home, ['peer', 'stop']) // the stopped line comes after anything the set logged
    }
    const q = entries(await readFile(join(quiet, 'peer.log'), 'utf8'))
    const v = entries(await readFile(join(verbose, 'peer.log'), 'utf8'))
    // A pause and a resume are info lines: why nothing moved for a while is in the log.
    expect(q.map((e) => e.event)).toEqual(['started', 'sync:paused', 'sync:resumed', 'stopping', 'stopped'])
    expect((q[1] as Entry & { until?: number }).until).toBeGreaterThan(Date.now())
    expect(q.every((e) => (e.level ?? 0) >= 30)).toBe(true)
    expect(v.find((e) => e.event === 'change')).toMatchObject({ level: 20, key: 'k1' })
    expect(v.map((e) => e.event)).toEqual(expect.arrayContaining(['started', 'change', 'stopped']))
    // The value of the record is never logged, only where it changed.
    expect(await readFile(join(verbose, 'peer.log'), 'utf8')).not.toContain('"value"')
  })

  it('rotates at --log-max-size, keeps --log-keep files 0600, and goes on writing peer.log; peer logs puts the time first', async () => {
    const home = await makeHome()
    const pid = await startDetached(home, ['--log-level', 'debug', '--log-max-size', '2048', '--log-keep', '2'])
    const log = join(home, 'peer.log')
    // Each set logs a debug `change` line of about 200 bytes: 40 of them pass 2048 bytes several times.
    const value = JSON.stringify({ text: 'x'.repeat(100) })
    for (let i = 0; i < 40; i += 8) {
      await Promise.all(
        Array.from({ length: 8 }, (_, j) => kitsyncOk(home, ['set', 'notes', `key-${String(i + j).padStart(3, '0')}-${'p'.repeat(60)}`, value])),
      )
    }
    await waitUntil(async () => ((await statOrUndefined(`${log}.2`)) === undefined ? undefined : true), STOP_TIMEOUT_MS, 'a second rotation')
    expect(await statOrUndefined(`${log}.3`)).toBeUndefined() // --log-keep 2
    for (const file of [log, `${log}.1`, `${log}.2`]) {
      expect(await fileMode(file)).toBe(0o600)
      expect((await statOrUndefined(file))?.size).toBeLessThanOrEqual(2048)
    }
    // The peer still writes the current file: a write after the rotations is logged there.
    await kitsyncOk(home, ['set', 'notes', 'last-one', '1'])
    await waitUntil(
      async () => (entries(await readFile(log, 'utf8')).some((e) => e.key === 'last-one') ? true : undefined),
      STOP_TIMEOUT_MS,
      'the last change in peer.log',
    )
    // The rotated files hold whole JSON lines.
    expect(entries(await readFile(`${log}.1`, 'utf8')).length).toBeGreaterThan(0)

    const human = await kitsyncOk(home, ['peer', 'logs', '-n', '3'])
    const lines = human.trimEnd().split('\n')
    expect(lines).toHaveLength(3)
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} {2}(DEBUG|INFO |WARN ) {2}\S/)
    expect(human).toContain('change  collection=notes key=last-one op=set source=local')
    expect(await kitsyncJson(home, ['peer', 'stop'])).toEqual({ event: 'stopped', pid })
  })

  it('names the other device in the lines about it, with the time first on a terminal and in the detached log', async () => {
    const ha = await makeHome()
    const hb = await makeHome()
    await kitsyncOk(ha, ['init'])
    // A in the foreground, its human output read; B joins it and then runs detached.
    const a = spawnKitsync(ha, ['peer', 'start', ...LOOPBACK])
    await a.waitForLine((l) => l.startsWith('Press Ctrl-C'), START_TIMEOUT_MS, "A's banner")
    const { token } = await kitsyncJson<{ token: string }>(ha, ['pair', '--ttl', '5'])
    await kitsyncOk(hb, ['join', token, '--name', 'laptop', ...LOOPBACK])
    const bId = (await kitsyncJson<{ info: { deviceId: string } }>(hb, ['status'])).info.deviceId
    await startDetached(hb, [])
    const time = '\\d\\d:\\d\\d:\\d\\d'
    await a.waitForLine((l) => new RegExp(`^${time} joined {4}laptop ${bId}$`).test(l), STOP_TIMEOUT_MS, 'the joined line, with the time first')
    await a.waitForLine((l) => new RegExp(`^${time} connected ${bId} \\(laptop\\)$`).test(l), STOP_TIMEOUT_MS, 'the connected line naming laptop')
    // B's log names A the same way, as a field beside its id.
    const aDevice = (await kitsyncJson<{ peerId: string; name: string; self: boolean }[]>(ha, ['devices'])).find((d) => d.self)
    expect(aDevice).toBeDefined()
    await waitUntil(
      async () => {
        const text = await readFile(join(hb, 'peer.log'), 'utf8')
        return entries(text).find((e) => e.event === 'sync:connected' && e.peerId === aDevice?.peerId)
      },
      STOP_TIMEOUT_MS,
      "B's sync:connected line about A",
    ).then((e) => expect(e).toMatchObject({ device: aDevice?.name }))
    await kitsyncOk(hb, ['peer', 'stop'])
    expect(await stopProc(a)).toEqual({ code: 0, signal: null })
  })
})
