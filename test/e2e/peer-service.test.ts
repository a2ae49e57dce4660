/**
 * The peer as a background service, through real processes: `peer start --detach` returns once
 * the peer serves and leaves it running in its own session, `peer stop` stops it cleanly,
 * `peer restart` starts it again with the remembered flags, `peer logs` prints its log.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  cleanup,
  expectCliError,
  fileMode,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  spawnKitsync,
  statOrUndefined,
  STOP_TIMEOUT_MS,
  waitUntil,
  killPids,
  pidAlive,
} from '../helpers/cli.js'

interface Detached {
  event: string
  detached: boolean
  pid: number
  socket: string
  log: string
  listen: string[]
}

interface Status {
  peer: { running: boolean; pid?: number; socket: string }
}

/** Every detached peer a test started, killed by pid in afterEach: nothing outlives a test. */
const detached = new Set<number>()

async function startDetached(home: string, args: string[] = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']): Promise<Detached> {
  const started = await kitsyncJson<Detached>(home, ['peer', 'start', '--detach', ...args])
  detached.add(started.pid)
  return started
}

async function restart(home: string): Promise<Detached> {
  const started = await kitsyncJson<Detached>(home, ['peer', 'restart'])
  detached.add(started.pid)
  return started
}

afterEach(async () => {
  await killPids(detached)
  await cleanup()
})

describe('kitsync peer start --detach / stop / restart / logs', () => {
  it('runs the peer in the background, serves writes, logs to a 0600 file, and stops with peer stop', async () => {
    const home = await makeHome()
    const started = await startDetached(home)
    expect(started).toMatchObject({ event: 'started', detached: true, socket: join(home, 'peer.sock'), log: join(home, 'peer.log') })
    expect(started.listen[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    // The CLI has exited; the peer runs on, in its own session and process group.
    expect(pidAlive(started.pid)).toBe(true)
    if (process.platform === 'linux') {
      const stat = await readFile(`/proc/${started.pid}/stat`, 'utf8')
      const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      expect([Number(pgrp), Number(session)]).toEqual([started.pid, started.pid])
    }
    const status = await kitsyncJson<Status>(home, ['status'])
    expect(status.peer).toMatchObject({ running: true, pid: started.pid })

    await kitsyncOk(home, ['set', 'notes', 'today', '{"text":"hi"}'])
    expect(await kitsyncJson(home, ['get', 'notes', 'today'])).toEqual({ text: 'hi' })

    expect(await fileMode(started.log)).toBe(0o600)
    // --json: the raw JSON lines (without it, each line starts with its time: peer-logs.test.ts).
    const logs = await kitsyncOk(home, ['peer', 'logs', '--json'])
    const startedLine = logs
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event?: string; pid?: number })
      .find((e) => e.event === 'started')
    expect(startedLine).toMatchObject({ event: 'started', pid: started.pid })
    expect((await kitsyncOk(home, ['peer', 'logs', '-n', '1'])).trimEnd().split('\n')).toHaveLength(1)

    const stopped = await kitsync(home, ['peer', 'stop'])
    expect(stopped).toMatchObject({ code: 0, stderr: '' })
    expect(stopped.stdout).toBe(`kitsync peer stopped (pid ${started.pid})\n`)
    expect(pidAlive(started.pid)).toBe(false)
    expect(await statOrUndefined(started.socket)).toBeUndefined()
    expect(await statOrUndefined(join(home, 'peer.pid'))).toBeUndefined()
    expect(await readFile(started.log, 'utf8')).toContain('"event":"stopped"')

    expectCliError(await kitsync(home, ['peer', 'stop']), 'PEER_NOT_RUNNING', 4)
    expect((await kitsyncJson<Status>(home, ['status'])).peer.running).toBe(false)
  })

  it('restart gives a new peer with the remembered flags, and a second start is refused', async () => {
    const home = await makeHome()
    const first = await startDetached(home)
    expectCliError(await kitsync(home, ['peer', 'start', '--detach']), 'PEER_ALREADY_RUNNING', 4)
    const second = await restart(home)
    expect(second.pid).not.toBe(first.pid)
    expect(pidAlive(first.pid)).toBe(false)
    // The flags of the first start (loopback, no mDNS), not those of the refused one.
    expect(second.listen[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    expect((await kitsyncJson<Status>(home, ['status'])).peer).toMatchObject({ running: true, pid: second.pid })
    await kitsyncOk(home, ['set', 'notes', 'after-restart', '1'])
    expect(await kitsyncJson(home, ['get', 'notes', 'after-restart'])).toBe(1)
    expect(await kitsyncJson(home, ['peer', 'stop'])).toEqual({ event: 'stopped', pid: second.pid })
    // With no peer running, restart starts one.
    const third = await restart(home)
    expect(third.pid).not.toBe(second.pid)
    expect(third.listen[0]).toMatch(/^\/ip4\/127\.0\.0\.1\//)
  })

  it('peer logs -f follows the log until interrupted', async () => {
    const home = await makeHome()
    const started = await startDetached(home)
    const follower = spawnKitsync(home, ['peer', 'logs', '-f', '--json'])
    await follower.waitForLine((l) => l.includes('"event":"started"'), STOP_TIMEOUT_MS, 'the started line')
    await kitsyncOk(home, ['peer', 'stop'])
    await follower.waitForLine((l) => l.includes('"event":"stopped"'), STOP_TIMEOUT_MS, 'the stopped line')
    follower.kill('SIGTERM')
    expect(await follower.waitForExit(STOP_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
    expect(pidAlive(started.pid)).toBe(false)
  })

  it('peer stop fails with PEER_STOP_TIMEOUT when the peer is still running at the deadline', async () => {
    const home = await makeHome()
    const started = await startDetached(home)
    // A wedged peer: it answers nothing and handles no signal until it is continued.
    process.kill(started.pid, 'SIGSTOP')
    try {
      const r = await kitsync(home, ['peer', 'stop', '--timeout', '1'])
      expect(expectCliError(r, 'PEER_STOP_TIMEOUT', 6)).toContain(`pid ${started.pid}`)
      expect(pidAlive(started.pid)).toBe(true)
    } finally {
      process.kill(started.pid, 'SIGCONT')
    }
    // Continued, it takes the SIGTERM it was sent and stops cleanly.
    await waitUntil(async () => (pidAlive(started.pid) ? undefined : true), STOP_TIMEOUT_MS, 'the peer to stop')
    expect(await readFile(started.log, 'utf8')).toContain('"event":"stopped"')
    expectCliError(await kitsync(home, ['peer', 'stop']), 'PEER_NOT_RUNNING', 4)
  })

  it('peer stop leaves a watch that serves the control socket without a peer alone', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    const watcher = spawnKitsync(home, ['watch'])
    await waitUntil(async () => (await statOrUndefined(join(home, 'peer.sock'))) ?? undefined, STOP_TIMEOUT_MS, 'the socket of watch')
    expectCliError(await kitsync(home, ['peer', 'stop']), 'PEER_NOT_RUNNING', 4)
    expect(watcher.exitInfo).toBeUndefined()
    await kitsyncOk(home, ['set', 'notes', 'still', '1'])
    await watcher.waitForLine((l) => l.includes('"still"'), STOP_TIMEOUT_MS, 'the change through watch')
  })

  it('peer logs without a log file says so', async () => {
    const home = await makeHome()
    expectCliError(await kitsync(home, ['peer', 'logs']), 'NOT_FOUND', 3)
  })
})
