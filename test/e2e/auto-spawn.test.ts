/**
 * Around the running peer, through real processes: a command that needs the peer starts it in
 * the background when workspace.json says `autoSpawn` (off by default), the library does so on
 * `openWorkspace({ spawn: true })`, and a CLI that meets a peer of another kitsync version says
 * how to restart it and, with --restart-peer, restarts it and goes on. The "older peer" is this
 * build copied aside with another version number: a real detached peer of version 0.0.9.
 */
import { execFileSync } from 'node:child_process'
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openWorkspace } from '../../src/api/open-workspace.js'
import { KITSYNC_VERSION } from '../../src/core/version.js'
import { announceSkip } from '../helpers/faults.js'
import {
  cleanup,
  CLI,
  expectCliError,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  makeTempDir,
  Proc,
  REPO_ROOT,
  STOP_TIMEOUT_MS,
  killPids,
  pidAlive,
} from '../helpers/cli.js'

interface Status {
  peer: { running: boolean; pid?: number }
  info: { version: string }
}

const LOOPBACK = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']
/** Every peer a test started, killed by pid in afterEach: nothing outlives a test. */
const started = new Set<number>()

afterEach(async () => {
  await killPids(started)
  await cleanup()
})

/** A home whose detached peer listens on loopback only (the flags a spawn uses, as `peer restart`). */
async function loopbackHome(): Promise<string> {
  const home = await makeHome()
  await kitsyncOk(home, ['init'])
  await writeFile(join(home, 'peer.args.json'), JSON.stringify(LOOPBACK) + '\n', { mode: 0o600 })
  return home
}

async function peerPid(home: string): Promise<number | undefined> {
  const status = await kitsyncJson<Status>(home, ['status'])
  return status.peer.running ? status.peer.pid : undefined
}

describe('auto-spawn', () => {
  it('is off by default; with peer auto-spawn on, `peers` and `sync now` start the peer in the background', async () => {
    const home = await loopbackHome()
    expectCliError(await kitsync(home, ['peers']), 'PEER_NOT_RUNNING', 4)
    expect(await peerPid(home)).toBeUndefined()
    expect(await kitsyncJson(home, ['peer', 'auto-spawn'])).toEqual({ autoSpawn: false })

    expect(await kitsyncJson(home, ['peer', 'auto-spawn', 'on'])).toEqual({ autoSpawn: true })
    expect(JSON.parse(await readFile(join(home, 'workspace.json'), 'utf8'))).toMatchObject({ autoSpawn: true })
    const r = await kitsync(home, ['peers'])
    expect(r.code, r.stderr).toBe(0)
    const pid = Number(r.stderr.match(/^kitsync: started the peer in the background \(pid (\d+), log (.*)\); kitsync peer stop stops it\n$/)?.[1])
    expect(pid).toBeGreaterThan(0)
    started.add(pid)
    expect(r.stdout).toMatch(/^DEVICE\s+NAME\s+STATE/)
    expect(await peerPid(home)).toBe(pid)
    // It runs on after the command, in its own session; the next command uses it, no second spawn.
    const again = await kitsync(home, ['sync', 'now', '--timeout', '1'])
    expect(again).toMatchObject({ code: 0, stderr: '' })
    expect(await kitsyncJson(home, ['peer', 'stop'])).toEqual({ event: 'stopped', pid })

    // Commands that do not need the peer open the store themselves, as before.
    await kitsyncOk(home, ['set', 'notes', 'k', '1'])
    expect(await peerPid(home)).toBeUndefined()
    // --json: the note is not printed (the output stays one document); sync now spawns too.
    const json = await kitsync(home, ['sync', 'now', '--json', '--timeout', '1'])
    expect(json).toMatchObject({ code: 0, stderr: '' })
    const second = await peerPid(home)
    expect(second).toBeDefined()
    started.add(second as number)
    expect(await kitsyncJson(home, ['peer', 'auto-spawn', 'off'])).toEqual({ autoSpawn: false })
    await kitsyncOk(home, ['peer', 'stop'])
    expectCliError(await kitsync(home, ['peers']), 'PEER_NOT_RUNNING', 4)
  })

  it("the library's openWorkspace({ spawn: true }) starts a detached peer and works through it", async () => {
    const home = await loopbackHome()
    const spawned: number[] = []
    const ws = await openWorkspace({ home, spawn: true, onSpawn: (p) => spawned.push(p.pid) })
    try {
      expect(spawned).toHaveLength(1)
      started.add(spawned[0] as number)
      const status = await ws.status()
      expect(status.peer).toMatchObject({ running: true, pid: spawned[0] })
      expect(spawned[0]).not.toBe(process.pid)
      await ws.set('notes', 'from-lib', { v: 1 })
    } finally {
      await ws.close()
    }
    // The peer outlives the workspace object; a second open uses it.
    expect(pidAlive(spawned[0] as number)).toBe(true)
    const again = await openWorkspace({ home, spawn: true, onSpawn: (p) => spawned.push(p.pid) })
    await again.close()
    expect(spawned).toHaveLength(1)
    expect(await kitsyncJson(home, ['get', 'notes', 'from-lib'])).toEqual({ v: 1 })
    await kitsyncOk(home, ['peer', 'stop'])
    await expect(openWorkspace({ home, mode: 'local', spawn: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})

/** This build copied aside with version 0.0.9: its bin/kitsync.js runs a real peer of that version. */
async function olderBuild(): Promise<string> {
  const dir = join(await makeTempDir('ks-old-'), 'kitsync')
  await mkdir(dir)
  await cp(join(REPO_ROOT, 'dist'), join(dir, 'dist'), { recursive: true })
  await cp(join(REPO_ROOT, 'bin'), join(dir, 'bin'), { recursive: true })
  await cp(join(REPO_ROOT, 'package.json'), join(dir, 'package.json'))
  await symlink(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'))
  const versionFile = join(dir, 'dist', 'core', 'version.js')
  const text = await readFile(versionFile, 'utf8')
  expect(text).toContain(`'${KITSYNC_VERSION}'`)
  await writeFile(versionFile, text.replace(`'${KITSYNC_VERSION}'`, "'0.0.9'"))
  return join(dir, 'bin', 'kitsync.js')
}

describe('a newer CLI meets an older running peer', () => {
  it('says how to restart it, and --restart-peer restarts it with this version and goes on', async () => {
    const oldCli = await olderBuild()
    const home = await makeHome()
    const old = new Proc(process.execPath, [oldCli, '--home', home, 'peer', 'start', '--detach', '--json', ...LOOPBACK])
    expect(await old.waitForExit(STOP_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
    const oldPid = (JSON.parse(old.stdout) as { pid: number }).pid
    started.add(oldPid)

    const message = expectCliError(await kitsync(home, ['get', 'notes', 'k']), 'VERSION_MISMATCH', 4)
    expect(message).toBe(
      `the running peer is kitsync 0.0.9 and this client is ${KITSYNC_VERSION}: restart it with kitsync peer restart, or run this command with --restart-peer`,
    )
    expect(pidAlive(oldPid)).toBe(true) // asked, not done: without a terminal nothing is restarted

    const r = await kitsync(home, ['--restart-peer', 'set', 'notes', 'k', '"after"'])
    expect(r.code, r.stderr).toBe(0)
    const newPid = Number(r.stderr.match(new RegExp(`^kitsync: restarted the peer \\(pid ${oldPid} -> (\\d+)\\) with this kitsync version\\n$`))?.[1])
    expect(newPid).toBeGreaterThan(0)
    started.add(newPid)
    expect(pidAlive(oldPid)).toBe(false)
    const status = await kitsyncJson<Status>(home, ['status'])
    expect(status.peer).toMatchObject({ running: true, pid: newPid })
    expect(status.info.version).toBe(KITSYNC_VERSION)
    // The restarted peer kept the flags of the old one's detached start (loopback only).
    expect(JSON.parse(await readFile(join(home, 'peer.args.json'), 'utf8'))).toEqual(LOOPBACK)
    expect(await kitsyncJson(home, ['get', 'notes', 'k'])).toBe('after')
    await kitsyncOk(home, ['peer', 'stop'])
  })
})

/** `script` (util-linux) gives a command a terminal: the question is asked only on one. */
function scriptSkipReason(): string | undefined {
  try {
    execFileSync('script', ['-qec', 'true', '/dev/null'], { stdio: 'ignore', timeout: 10_000 })
    return undefined
  } catch (err) {
    return `no working script(1) to give the CLI a terminal (${(err as Error).message})`
  }
}

describe.skipIf(announceSkip('test/e2e/auto-spawn.test.ts (terminal)', scriptSkipReason()))('the same on a terminal', () => {
  /** Run `kitsync --home HOME ...args` on a pseudo-terminal, typing `answer`. */
  async function onTerminal(home: string, args: string[], answer: string): Promise<{ code: number | null; output: string }> {
    const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`
    const command = [process.execPath, CLI, '--home', home, ...args].map(quote).join(' ')
    const proc = new Proc('script', ['-qec', command, '/dev/null'], { input: answer })
    const exit = await proc.waitForExit(STOP_TIMEOUT_MS * 2)
    return { code: exit.code, output: proc.stdout.replace(/\r/g, '') }
  }

  it('asks: "n" leaves the older peer running, "y" restarts it and goes on', async () => {
    const oldCli = await olderBuild()
    const home = await makeHome()
    const old = new Proc(process.execPath, [oldCli, '--home', home, 'peer', 'start', '--detach', '--json', ...LOOPBACK])
    expect(await old.waitForExit(STOP_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
    const oldPid = (JSON.parse(old.stdout) as { pid: number }).pid
    started.add(oldPid)
    const question = `kitsync: the running peer is kitsync 0.0.9 and this client is ${KITSYNC_VERSION}.\nRestart the peer with this version now? [y/N] `

    const no = await onTerminal(home, ['get', 'notes', 'k'], 'n\n')
    expect(no.output).toContain(question)
    expect(no.output).toContain('kitsync: VERSION_MISMATCH: ')
    expect(no.code).toBe(4)
    expect(pidAlive(oldPid)).toBe(true)

    const yes = await onTerminal(home, ['set', 'notes', 'k', '3'], 'y\n')
    expect(yes.output).toContain(question)
    const newPid = Number(yes.output.match(new RegExp(`kitsync: restarted the peer \\(pid ${oldPid} -> (\\d+)\\)`))?.[1])
    expect(newPid).toBeGreaterThan(0)
    started.add(newPid)
    expect(yes.code).toBe(0)
    expect(pidAlive(oldPid)).toBe(false)
    expect(await kitsyncJson(home, ['get', 'notes', 'k'])).toBe(3)
    await kitsyncOk(home, ['peer', 'stop'])
  })
})
