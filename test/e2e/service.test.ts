/**
 * `kitsync service install | uninstall | status` through the real CLI: the unit file is written
 * to and removed from a temporary HOME / XDG_CONFIG_HOME. With no systemctl on PATH the unit is
 * written, the command exits 0 and says exactly what to run; with a systemctl that answers
 * (a recording stand-in here) it is enabled with `--user enable --now`. A real user systemd is
 * used only where `systemctl --user` works (skipped with the reason printed otherwise).
 */
import { execFileSync } from 'node:child_process'
import { chmod, lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { announceSkip } from '../helpers/faults.js'
import {
  cleanup,
  CLI,
  expectCliError,
  fileMode,
  kitsync,
  kitsyncJson,
  makeHome,
  makeTempDir,
  statOrUndefined,
  waitUntil,
  START_TIMEOUT_MS,
} from '../helpers/cli.js'

interface ServiceState {
  manager: string
  name: string
  unit: string
  path: string
  home: string
  installed: boolean
  enabled: boolean | null
  active: boolean | null
  peerRunning: boolean
  warning?: string
  command?: string
  removed?: boolean
}

afterEach(cleanup)

/** A user HOME and XDG_CONFIG_HOME of the test's own, and a PATH with nothing on it (no systemctl). */
async function userEnv(): Promise<{ env: NodeJS.ProcessEnv; user: string; config: string; bin: string }> {
  const user = await makeTempDir('ks-svc-')
  const bin = join(user, 'bin')
  await mkdir(bin)
  return { user, config: join(user, 'cfg'), bin, env: { HOME: user, XDG_CONFIG_HOME: join(user, 'cfg'), PATH: bin } }
}

describe('kitsync service without a reachable systemd', () => {
  it('install writes a 0600 unit, exits 0 and prints the command to run; uninstall removes it', async () => {
    const { env, config } = await userEnv()
    const home = await makeHome()
    const r = await kitsync(home, ['service', 'install', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--log-level', 'warn'], { env })
    expect(r.code, r.stderr).toBe(0)
    const unitName = r.stdout.match(/^installed (kitsync-home-[0-9a-f]{8}\.service) \(systemd\)$/m)?.[1]
    expect(unitName).toBeDefined()
    const path = join(config, 'systemd', 'user', unitName as string)
    expect(r.stdout).toContain(`unit      ${path}`)
    expect(r.stderr).toBe(
      `kitsync: warning: systemctl was not found on PATH: the unit is written but not enabled\n  run: systemctl --user daemon-reload && systemctl --user enable --now ${unitName}\n`,
    )
    expect(await fileMode(path)).toBe(0o600)
    const unit = await readFile(path, 'utf8')
    expect(unit).toContain(
      `ExecStart="${process.execPath}" "${CLI}" "--home" "${home}" "peer" "start" "--headless" "--listen" "/ip4/127.0.0.1/tcp/0" "--no-mdns" "--log-level" "warn"\n`,
    )
    expect(unit).toMatch(/^Restart=on-failure$/m)

    const status = await kitsyncJson<ServiceState>(home, ['service', 'status'], { env })
    expect(status).toMatchObject({ manager: 'systemd', path, home, installed: true, enabled: null, active: null, peerRunning: false })
    expect(status.warning).toBe('systemctl was not found on PATH')

    // What `systemctl --user enable` would have made, removed by uninstall all the same.
    const wants = join(config, 'systemd', 'user', 'default.target.wants', unitName as string)
    await mkdir(join(config, 'systemd', 'user', 'default.target.wants'))
    await symlink(path, wants)
    const removed = await kitsyncJson<ServiceState>(home, ['service', 'uninstall'], { env })
    expect(removed).toMatchObject({ installed: false, removed: true, path })
    expect(await statOrUndefined(path)).toBeUndefined()
    expect(await lstat(wants).catch(() => undefined)).toBeUndefined()
    expect(await kitsyncJson<ServiceState>(home, ['service', 'status'], { env })).toMatchObject({ installed: false })
    // Nothing left to remove: still exit 0, and it says so.
    const again = await kitsync(home, ['service', 'uninstall'], { env })
    expect(again).toMatchObject({ code: 0, stdout: `no service installed for ${home} (${path})\n` })
  })

  it('gives two homes two units, and --json puts the warning and the command in the document', async () => {
    const { env } = await userEnv()
    const [a, b] = [await makeHome(), await makeHome()]
    const ra = await kitsync(a, ['--json', 'service', 'install'], { env })
    const rb = await kitsync(b, ['--json', 'service', 'install'], { env })
    expect([ra.code, rb.code, ra.stderr, rb.stderr]).toEqual([0, 0, '', ''])
    const [sa, sb] = [JSON.parse(ra.stdout) as ServiceState, JSON.parse(rb.stdout) as ServiceState]
    expect(sa.path).not.toBe(sb.path)
    expect(sa).toMatchObject({
      installed: true,
      enabled: false,
      active: false,
      command: `systemctl --user daemon-reload && systemctl --user enable --now ${sa.unit}`,
    })
    expect(await readFile(sa.path, 'utf8')).toContain(`"--home" "${a}"`)
    expect(await readFile(sb.path, 'utf8')).toContain(`"--home" "${b}"`)
  })

  it('with a systemctl that answers: daemon-reload, then enable --now the unit; disable --now on uninstall', async () => {
    const { env, bin, user } = await userEnv()
    const calls = join(user, 'calls.txt')
    // A stand-in that records its arguments and answers as a user systemd with the unit enabled and active.
    await writeFile(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> ${calls}\ncase "$2" in is-enabled) echo enabled;; is-active) echo active;; esac\nexit 0\n`)
    await chmod(join(bin, 'systemctl'), 0o755)
    const home = await makeHome()
    const state = await kitsyncJson<ServiceState>(home, ['service', 'install'], { env: { ...env, PATH: `${bin}:/usr/bin:/bin` } })
    expect(state).toMatchObject({ installed: true, enabled: true, active: true })
    expect(state.warning).toBeUndefined()
    await kitsyncJson(home, ['service', 'uninstall'], { env: { ...env, PATH: `${bin}:/usr/bin:/bin` } })
    expect((await readFile(calls, 'utf8')).trim().split('\n')).toEqual([
      '--user show-environment',
      '--user daemon-reload',
      `--user enable --now ${state.unit}`,
      `--user is-enabled ${state.unit}`,
      `--user is-active ${state.unit}`,
      '--user show-environment',
      `--user disable --now ${state.unit}`,
      '--user daemon-reload',
    ])
  })

  it('a systemctl that refuses the unit fails with SERVICE_FAILED (exit 13) and leaves the unit written', async () => {
    const { env, bin } = await userEnv()
    await writeFile(join(bin, 'systemctl'), `#!/bin/sh\ncase "$2" in enable) echo "Failed to enable unit: Access denied" >&2; exit 1;; esac\nexit 0\n`)
    await chmod(join(bin, 'systemctl'), 0o755)
    const home = await makeHome()
    const r = await kitsync(home, ['service', 'install'], { env: { ...env, PATH: `${bin}:/usr/bin:/bin` } })
    const message = expectCliError(r, 'SERVICE_FAILED', 13)
    expect(message).toMatch(/enable --now kitsync-home-[0-9a-f]{8}\.service failed: Failed to enable unit: Access denied \(the unit .* is written\)/)
  })

  it('--platform darwin writes the launchd agent under ~/Library/LaunchAgents and prints the launchctl command', async () => {
    const { env, user } = await userEnv()
    const home = await makeHome()
    const state = await kitsyncJson<ServiceState>(home, ['service', 'install', '--platform', 'darwin'], { env })
    expect(state.path).toMatch(new RegExp(`^${user}/Library/LaunchAgents/dev\\.kitsync\\.peer\\.home-[0-9a-f]{8}\\.plist$`))
    expect(state.command).toBe(`launchctl bootstrap gui/${process.getuid?.() ?? 0} ${state.path}`)
    const plist = await readFile(state.path, 'utf8')
    expect(plist).toContain('<key>RunAtLoad</key>')
    expect(plist).toContain(`<string>${home}/peer.log</string>`)
    expect(await fileMode(state.path)).toBe(0o600)
    await kitsyncJson(home, ['service', 'uninstall', '--platform', 'darwin'], { env })
    expect(await statOrUndefined(state.path)).toBeUndefined()
  })

  it('refuses a bad --log-level and an unknown platform with one line', async () => {
    const { env } = await userEnv()
    const home = await makeHome()
    expectCliError(await kitsync(home, ['service', 'install', '--log-level', 'loud'], { env }), 'INVALID_ARGUMENT', 2)
    expectCliError(await kitsync(home, ['service', 'status', '--platform', 'win32'], { env }), 'SERVICE_FAILED', 13)
  })
})

/** Why the real user systemd cannot be used here, or undefined when it can. */
function systemdSkipReason(): string | undefined {
  if (process.platform !== 'linux') return `systemd needs Linux (running on ${process.platform})`
  try {
    execFileSync('systemctl', ['--user', 'show-environment'], { stdio: 'pipe', timeout: 10_000 })
    return undefined
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim()
    return `systemctl --user does not work here (${stderr === undefined || stderr === '' ? (err as Error).message : stderr})`
  }
}

const skipSystemd = announceSkip('test/e2e/service.test.ts (real systemd)', systemdSkipReason())

describe.skipIf(skipSystemd)('kitsync service with the real user systemd', () => {
  it('install starts the peer under systemd, status says so, uninstall stops it', async () => {
    const home = await makeHome()
    const state = await kitsyncJson<ServiceState>(home, ['service', 'install', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    try {
      expect(state).toMatchObject({ installed: true, enabled: true })
      await waitUntil(
        async () => ((await kitsyncJson<{ peer: { running: boolean } }>(home, ['status'])).peer.running ? true : undefined),
        START_TIMEOUT_MS,
        'the peer under systemd to answer',
      )
      expect(await kitsyncJson<ServiceState>(home, ['service', 'status'])).toMatchObject({ installed: true, enabled: true, active: true, peerRunning: true })
    } finally {
      await kitsyncJson<ServiceState>(home, ['service', 'uninstall'])
    }
    expect(await kitsyncJson<ServiceState>(home, ['service', 'status'])).toMatchObject({ installed: false, enabled: false, active: false, peerRunning: false })
  })
})
