/**
 * The files that run the peer at login: a systemd user unit (Linux) and a launchd agent (macOS).
 * Pure functions of a ServiceSpec, so their content is tested on any platform. They hold paths
 * and flags only: never a token, a key or the environment of the shell that installed them.
 */
import { createHash } from 'node:crypto'
import { basename, join } from 'node:path'

export type ServiceManager = 'systemd' | 'launchd'

export interface ServiceSpec {
  /** Home folder of the device (always passed as --home: a service has no KITSYNC_HOME). */
  home: string
  /** The Node binary (process.execPath at install time). */
  node: string
  /** bin/kitsync.js of this installation. */
  cli: string
  /** `peer start` flags (--listen, --bootstrap, --no-mdns, --log-level ...). */
  args: string[]
  /** Unit name without suffix (serviceName()). */
  name: string
}

/**
 * The service name of a home: `kitsync` for the per-user default home, `kitsync-<folder>-<hash>`
 * for any other, so two homes of one user get two units that do not collide.
 */
export function serviceName(home: string, defaultHome: string): string {
  if (home === defaultHome) return 'kitsync'
  const folder = basename(home)
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 24)
  const hash = createHash('sha256').update(home).digest('hex').slice(0, 8)
  return `kitsync-${folder === '' ? 'home' : folder}-${hash}`
}

/** launchd label: `dev.kitsync.peer` for the default home, `dev.kitsync.peer.<folder>-<hash>` else. */
export function launchdLabel(name: string): string {
  return name === 'kitsync' ? 'dev.kitsync.peer' : `dev.kitsync.peer.${name.slice('kitsync-'.length)}`
}

/** Where the unit goes: $XDG_CONFIG_HOME/systemd/user (default ~/.config), or ~/Library/LaunchAgents. */
export function servicePath(manager: ServiceManager, name: string, env: NodeJS.ProcessEnv, userHome: string): string {
  if (manager === 'launchd') return join(userHome, 'Library', 'LaunchAgents', `${launchdLabel(name)}.plist`)
  const config = env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(userHome, '.config')
  return join(config, 'systemd', 'user', `${name}.service`)
}

/** The command line of the service: the peer in the foreground, JSON lines (--headless). */
export function serviceCommand(spec: ServiceSpec): string[] {
  return [spec.node, spec.cli, '--home', spec.home, 'peer', 'start', '--headless', ...spec.args]
}

/**
 * One ExecStart word, quoted for systemd: double quotes, `\` and `"` escaped, `%` doubled
 * (specifiers) and `$` doubled (variable expansion), so a path with spaces or `%` stays itself.
 */
export function systemdQuote(word: string): string {
  return '"' + word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$') + '"'
}

/**
 * The systemd user unit. Restart=on-failure brings a crashed peer back; a clean stop (SIGTERM,
 * exit 0) stays stopped. A start refused because another peer holds the home (exit 4, a peer
 * started by hand) is retried too, every 10 s: once that peer stops, the service's takes over.
 */
export function systemdUnit(spec: ServiceSpec): string {
  return [
    '# Written by kitsync service install; kitsync service uninstall removes it.',
    '[Unit]',
    `Description=kitsync peer (${spec.home})`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${serviceCommand(spec).map(systemdQuote).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=10',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30',
    'UMask=0077',
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n')
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/**
 * The launchd agent. RunAtLoad starts it at login; KeepAlive with SuccessfulExit=false restarts
 * it when it fails (as systemd's on-failure), not after a clean `peer stop`. The peer writes its
 * own rotating log (--log-file); launchd's stdout/stderr go to the same file for crash traces.
 */
export function launchdPlist(spec: ServiceSpec): string {
  const log = join(spec.home, 'peer.log')
  const args = [...serviceCommand(spec), '--log-file', log]
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<!-- Written by kitsync service install; kitsync service uninstall removes it. -->',
    '<plist version="1.0">',
    '<dict>',
    '  <key>Label</key>',
    `  <string>${xml(launchdLabel(spec.name))}</string>`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...args.map((a) => `    <string>${xml(a)}</string>`),
    '  </array>',
    '  <key>RunAtLoad</key>',
    '  <true/>',
    '  <key>KeepAlive</key>',
    '  <dict>',
    '    <key>SuccessfulExit</key>',
    '    <false/>',
    '  </dict>',
    '  <key>ThrottleInterval</key>',
    '  <integer>10</integer>',
    '  <key>Umask</key>',
    '  <integer>63</integer>',
    '  <key>StandardOutPath</key>',
    `  <string>${xml(log)}</string>`,
    '  <key>StandardErrorPath</key>',
    `  <string>${xml(log)}</string>`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n')
}
