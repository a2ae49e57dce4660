/**
 * `kitsync service install | uninstall | status`: run the peer at login under the user's service
 * manager (a systemd user unit on Linux, a launchd agent on macOS). The unit files are made by
 * ../service-unit.ts; this file writes them and talks to systemctl / launchctl.
 *
 * When the manager cannot be reached (no systemctl on PATH, no user bus in a container or an
 * SSH session without lingering), install still writes the unit, exits 0 and prints, as a
 * warning, the exact command that enables it. SERVICE_FAILED (exit 13) only when nothing can
 * be done: the manager refused the unit, or the platform has no manager kitsync knows.
 */
import { execFile } from 'node:child_process'
import { access, chmod, constants, mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Option, type Command } from 'commander'
import { isKitsyncError, KitsyncError } from '../../core/errors.js'
import { ControlClient } from '../../api/control-client.js'
import { homePaths, resolveHome } from '../../store/home.js'
import { example, globals, networkOptions, print, type CliIO, type NetworkFlags } from '../context.js'
import { launchdLabel, launchdPlist, serviceName, servicePath, systemdUnit, type ServiceManager, type ServiceSpec } from '../service-unit.js'
import { startFlagsAsArgs } from './peer-service.js'
import { isLogLevel, LOG_LEVELS } from '../headless-log.js'

const CLI_ENTRY = fileURLToPath(new URL('../../../bin/kitsync.js', import.meta.url))
/** How long one systemctl / launchctl call may take. */
const MANAGER_TIMEOUT_MS = 15_000

interface Target {
  manager: ServiceManager
  name: string
  /** The unit file (systemd) or plist (launchd). */
  path: string
  home: string
  /** systemd unit name (`NAME.service`) or launchd label. */
  unit: string
}

export interface ServiceState {
  manager: ServiceManager
  name: string
  unit: string
  path: string
  home: string
  installed: boolean
  /** null: the service manager could not be asked (see reason). */
  enabled: boolean | null
  active: boolean | null
  /** Whether a peer answers on the home's control socket (under the service or not). */
  peerRunning: boolean
  /** Why enabled/active are unknown, or what the user must still do. */
  warning?: string
  /** The command that finishes the job when the manager could not be reached. */
  command?: string
}

function managerFor(platform: string): ServiceManager {
  if (platform === 'linux') return 'systemd'
  if (platform === 'darwin') return 'launchd'
  throw new KitsyncError('SERVICE_FAILED', `no service manager kitsync knows on ${platform}: run kitsync peer start --detach from a logon task instead`)
}

function targetOf(io: CliIO, homeFlag: string | undefined, platform: string): Target {
  const manager = managerFor(platform)
  const home = resolveHome(homeFlag, io.env)
  const name = serviceName(home, resolveHome(undefined, { ...io.env, KITSYNC_HOME: undefined }))
  const userHome = io.env.HOME ?? homedir()
  return { manager, name, home, path: servicePath(manager, name, io.env, userHome), unit: manager === 'systemd' ? `${name}.service` : launchdLabel(name) }
}

/** The first executable `command` on the PATH of `env`. */
async function onPath(command: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, command)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this folder: try the next
    }
  }
  return undefined
}

interface Ran {
  ok: boolean
  stdout: string
  /** The first line of stderr (or of the spawn error). */
  error: string
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: MANAGER_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      const error = (stderr.trim() || (err === null ? '' : err.message)).split('\n')[0] ?? ''
      resolve({ ok: err === null, stdout: stdout.trim(), error })
    })
  })
}

/** A systemctl --user that answers, or why there is none. */
async function userSystemctl(env: NodeJS.ProcessEnv): Promise<{ systemctl: string } | { reason: string }> {
  const systemctl = await onPath('systemctl', env)
  if (systemctl === undefined) return { reason: 'systemctl was not found on PATH' }
  const probe = await run(systemctl, ['--user', 'show-environment'], env)
  if (!probe.ok) return { reason: `systemctl --user cannot reach a user service manager (${probe.error})` }
  return { systemctl }
}

function specOf(target: Target, args: string[]): ServiceSpec {
  return { home: target.home, node: process.execPath, cli: CLI_ENTRY, args, name: target.name }
}

async function writePrivate(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, text, { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

async function peerAnswers(io: CliIO, home: string): Promise<boolean> {
  try {
    const client = await ControlClient.connect(homePaths(home).socket)
    client?.close()
    return client !== undefined
  } catch (err) {
    // A peer of another version runs all the same; anything else: none that answers.
    return isKitsyncError(err, 'VERSION_MISMATCH')
  }
}

export async function installService(io: CliIO, target: Target, args: string[]): Promise<ServiceState> {
  const spec = specOf(target, args)
  const base = { manager: target.manager, name: target.name, unit: target.unit, path: target.path, home: target.home, installed: true }
  const running = await peerAnswers(io, target.home)
  // A peer started by hand holds the home: the service's peer would stop at once (exit 4).
  const busy = running ? '; a peer already runs for this home: stop it (kitsync peer stop) so the service can start its own' : ''
  if (target.manager === 'systemd') {
    await writePrivate(target.path, systemdUnit(spec))
    const ctl = await userSystemctl(io.env)
    const command = `systemctl --user daemon-reload && systemctl --user enable --now ${target.unit}`
    if ('reason' in ctl)
      return { ...base, enabled: false, active: false, peerRunning: running, warning: `${ctl.reason}: the unit is written but not enabled`, command }
    const reload = await run(ctl.systemctl, ['--user', 'daemon-reload'], io.env)
    if (!reload.ok) throw new KitsyncError('SERVICE_FAILED', `systemctl --user daemon-reload failed: ${reload.error} (the unit ${target.path} is written)`)
    const enable = await run(ctl.systemctl, ['--user', 'enable', '--now', target.unit], io.env)
    if (!enable.ok)
      throw new KitsyncError('SERVICE_FAILED', `systemctl --user enable --now ${target.unit} failed: ${enable.error} (the unit ${target.path} is written)`)
    const state = await systemdState(ctl.systemctl, target, io.env)
    return { ...base, ...state, peerRunning: running, ...(busy === '' ? {} : { warning: `installed${busy}` }) }
  }
  await writePrivate(target.path, launchdPlist(spec))
  const domain = `gui/${process.getuid?.() ?? 501}`
  const command = `launchctl bootstrap ${domain} ${target.path}`
  const launchctl = await onPath('launchctl', io.env)
  if (launchctl === undefined)
    return {
      ...base,
      enabled: false,
      active: false,
      peerRunning: running,
      warning: 'launchctl was not found on PATH: the agent is written but not loaded',
      command,
    }
  // An agent loaded before (an earlier install) is unloaded first; failing here means it was not.
  await run(launchctl, ['bootout', `${domain}/${target.unit}`], io.env)
  const boot = await run(launchctl, ['bootstrap', domain, target.path], io.env)
  if (!boot.ok) throw new KitsyncError('SERVICE_FAILED', `${command} failed: ${boot.error} (the agent ${target.path} is written)`)
  return { ...base, enabled: true, active: true, peerRunning: running, ...(busy === '' ? {} : { warning: `installed${busy}` }) }
}

async function systemdState(systemctl: string, target: Target, env: NodeJS.ProcessEnv): Promise<{ enabled: boolean; active: boolean }> {
  const enabled = await run(systemctl, ['--user', 'is-enabled', target.unit], env)
  const active = await run(systemctl, ['--user', 'is-active', target.unit], env)
  return { enabled: enabled.stdout === 'enabled', active: active.stdout === 'active' }
}

export async function uninstallService(io: CliIO, target: Target): Promise<ServiceState & { removed: boolean }> {
  const base = {
    manager: target.manager,
    name: target.name,
    unit: target.unit,
    path: target.path,
    home: target.home,
    installed: false,
    enabled: false,
    active: false,
  }
  const installed = await exists(target.path)
  if (target.manager === 'systemd') {
    const ctl = await userSystemctl(io.env)
    let warning: string | undefined
    if ('systemctl' in ctl) {
      // Not enabled or not loaded is fine here: what matters is that it is neither afterwards.
      await run(ctl.systemctl, ['--user', 'disable', '--now', target.unit], io.env)
    } else if (installed) {
      warning = `${ctl.reason}: if the service runs now, it runs until the next logout (systemctl --user stop ${target.unit})`
    }
    // What `systemctl --user enable` made, removed by hand when systemctl cannot do it.
    await rm(join(dirname(target.path), 'default.target.wants', target.unit), { force: true })
    await rm(target.path, { force: true })
    if ('systemctl' in ctl) await run(ctl.systemctl, ['--user', 'daemon-reload'], io.env)
    return { ...base, removed: installed, peerRunning: await peerAnswers(io, target.home), ...(warning === undefined ? {} : { warning }) }
  }
  const launchctl = await onPath('launchctl', io.env)
  if (launchctl !== undefined) await run(launchctl, ['bootout', `gui/${process.getuid?.() ?? 501}/${target.unit}`], io.env)
  await rm(target.path, { force: true })
  return {
    ...base,
    removed: installed,
    peerRunning: await peerAnswers(io, target.home),
    ...(launchctl === undefined && installed
      ? { warning: `launchctl was not found on PATH: if the agent runs, stop it with launchctl bootout gui/$(id -u)/${target.unit}` }
      : {}),
  }
}

export async function serviceStatus(io: CliIO, target: Target): Promise<ServiceState> {
  const installed = await exists(target.path)
  const base = { manager: target.manager, name: target.name, unit: target.unit, path: target.path, home: target.home, installed }
  const peerRunning = await peerAnswers(io, target.home)
  if (target.manager === 'systemd') {
    const ctl = await userSystemctl(io.env)
    if ('reason' in ctl) return { ...base, enabled: null, active: null, peerRunning, warning: ctl.reason }
    return { ...base, ...(await systemdState(ctl.systemctl, target, io.env)), peerRunning }
  }
  const launchctl = await onPath('launchctl', io.env)
  if (launchctl === undefined) return { ...base, enabled: null, active: null, peerRunning, warning: 'launchctl was not found on PATH' }
  const listed = await run(launchctl, ['print', `gui/${process.getuid?.() ?? 501}/${target.unit}`], io.env)
  return { ...base, enabled: installed && listed.ok, active: listed.ok && /state = running/.test(listed.stdout), peerRunning }
}

const yesNo = (v: boolean | null): string => (v === null ? 'unknown' : v ? 'yes' : 'no')

function formatState(s: ServiceState, verb: string): string {
  return [
    `${verb} ${s.unit} (${s.manager})`,
    `  unit      ${s.path}`,
    `  home      ${s.home}`,
    `  installed ${yesNo(s.installed)}`,
    `  enabled   ${yesNo(s.enabled)} (at login)`,
    `  active    ${yesNo(s.active)}`,
    `  peer      ${s.peerRunning ? 'answers on the control socket' : 'not running'}`,
    '',
  ].join('\n')
}

/** The warning (and the command to run) on stderr; with --json it is in the document only. */
function warn(io: CliIO, json: boolean, s: ServiceState): void {
  if (json || s.warning === undefined) return
  io.err(`kitsync: warning: ${s.warning}${s.command === undefined ? '' : `\n  run: ${s.command}`}\n`)
}

export function register(program: Command, io: CliIO): void {
  const platformOption = (): Option => new Option('--platform <platform>', 'linux or darwin (tests: the unit of another platform)').hideHelp()
  const service = example(
    program.command('service').description('run the peer at login: a systemd user unit (Linux) or a launchd agent (macOS)'),
    'kitsync service install',
    'kitsync service status --json',
  )
  example(
    networkOptions(
      service
        .command('install')
        .description(
          'write the unit (~/.config/systemd/user/kitsync.service, or ~/Library/LaunchAgents/dev.kitsync.peer.plist; another --home gets its own name) and enable it: the peer starts at login and again when it fails. Without a reachable service manager the unit is written, and a warning prints the command to enable it (exit 0)',
        )
        .option('--log-level <level>', `log level of the service's peer: ${LOG_LEVELS.join(', ')} (default info)`)
        .addOption(platformOption()),
    ),
    'kitsync service install',
    'kitsync --home ~/kitsync-work service install --listen /ip4/0.0.0.0/tcp/4772',
  ).action(async (options: NetworkFlags & { logLevel?: string; platform?: string }, cmd: Command) => {
    const opts = globals(cmd)
    if (options.logLevel !== undefined && !isLogLevel(options.logLevel))
      throw new KitsyncError('INVALID_ARGUMENT', `--log-level must be one of ${LOG_LEVELS.join(', ')}, not ${JSON.stringify(options.logLevel)}`)
    const target = targetOf(io, opts.home, options.platform ?? process.platform)
    const args = startFlagsAsArgs(options) // --log-level included
    const state = await installService(io, target, args)
    warn(io, opts.json === true, state)
    print(io, opts, state, () => formatState(state, 'installed'))
  })
  example(
    service
      .command('uninstall')
      .description('stop and disable the service of this home and remove its unit file (nothing to remove: exit 0)')
      .addOption(platformOption()),
    'kitsync service uninstall',
  ).action(async (options: { platform?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const state = await uninstallService(io, targetOf(io, opts.home, options.platform ?? process.platform))
    warn(io, opts.json === true, state)
    print(io, opts, state, () => (state.removed ? formatState(state, 'removed') : `no service installed for ${state.home} (${state.path})\n`))
  })
  example(
    service
      .command('status')
      .description('whether the service of this home is installed, enabled at login and active, and where its unit is')
      .addOption(platformOption()),
    'kitsync service status',
    'kitsync service status --json',
  ).action(async (options: { platform?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const state = await serviceStatus(io, targetOf(io, opts.home, options.platform ?? process.platform))
    print(io, opts, state, () => formatState(state, 'service') + (state.warning === undefined ? '' : `  note      ${state.warning}\n`))
  })
}
