import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { resolveHome } from '../../store/home.js'
import { example, globals, networkOptions, peerOptionsFrom, type CliIO, type NetworkFlags } from '../context.js'
import { splitList } from './items.js'
import { registerService, startFlagsAsArgs, startDetachedAndPrint } from './peer-service.js'
import { addLogOptions, logOptionsFrom, type LogFlags } from './peer-log-options.js'
import type { LogLevel } from '../headless-log.js'
import type { SyncProgressEvent } from '../../core/workspace-types.js'
import { formatBytes } from './stats.js'

export function register(program: Command, io: CliIO): void {
  const peer = example(program.command('peer').description('run the peer of this device'), 'kitsync peer start --json')
  example(
    networkOptions(
      addLogOptions(peer.command('start'))
        .description(
          'run the peer in the foreground: owns the store, syncs with the other devices, serves the control socket; Ctrl-C or SIGTERM stops it cleanly',
        )
        .option('--name <name>', 'name of the workspace if the home folder has none yet')
        .option('--headless', 'run without a terminal (a server, systemd): JSON log lines on stdout, see docs/vps.md')
        .option('--relay', 'also serve as a circuit relay v2 for the members of the workspace (the VPS)')
        .option('--items <names>', 'sync only these collections (comma-separated names or patterns; saved in workspace.json, see kitsync items)')
        .option('--local-only <names>', 'never send nor accept these collections (comma-separated; saved in workspace.json)')
        .option('--detach', 'run the peer in the background (log in HOME/peer.log); returns once it listens and answers')
        .option('--http-port <port>', 'port of the HTTP API and /metrics on 127.0.0.1 and ::1 (default 4772, or any free one; 0: any free one)', parsePort)
        .option('--no-http', 'serve no HTTP API (see docs/HTTP-API.md)'),
    ),
    'kitsync peer start',
    'kitsync peer start --detach            # in the background; kitsync peer stop stops it',
    'kitsync peer start --items watchlists,alerts --local-only scratch',
    'kitsync peer start --listen /ip4/0.0.0.0/tcp/4771 --bootstrap /ip4/203.0.113.7/tcp/4771/p2p/12D3KooW...',
    'kitsync peer start --headless --relay --no-mdns     # on a VPS',
    'kitsync peer start --http-port 8384    # the HTTP API on http://127.0.0.1:8384/ (kitsync dashboard)',
    'kitsync peer start --detach --log-level debug --log-max-size 1048576 --log-keep 3',
  ).action(async (options: StartFlags, cmd: Command) => {
    const opts = globals(cmd)
    const logging = logOptionsFrom(options) // checked before a detached start too
    if (options.detach === true) return startDetachedAndPrint(io, opts, startFlagsAsArgs(options))
    if (options.headless === true) return runHeadless(io, opts.home, options)
    const json = opts.json === true
    const names = new Map<string, string>()
    const who = (peerId: string): string => (names.has(peerId) ? `${peerId} (${names.get(peerId)})` : peerId)
    // Events can come as soon as the network starts, before the started line is printed:
    // hold them until then, so the output is in order and nothing is lost. A held line is
    // written out then, once the names of the devices are known.
    type Line = () => string
    let held: Line[] | undefined = []
    const emit = (line: Line, level: LogLevel = 'info'): void => {
      if (!logging.shows(level)) return
      if (held === undefined) io.out(line())
      else held.push(line)
    }
    // Each event line starts with the local time (HH:MM:SS, when it happened) on a person's screen.
    const line = (event: string, payload: object, human: string | (() => string)): Line => {
      const time = new Date().toTimeString().slice(0, 8)
      return () => (json ? JSON.stringify({ event, ...payload }) + '\n' : `${time} ${typeof human === 'string' ? human : human()}\n`)
    }
    const progressLine = progressLines()
    const running = await (
      await import('../../daemon/peer.js')
    ).Peer.start({
      ...startOptions(io, opts.home, options),
      listeners: {
        'sync:connected': (e) => emit(line('sync:connected', e, () => `connected ${who(e.peerId)}`)),
        'sync:offline': (e) => emit(line('sync:offline', e, () => `offline   ${who(e.peerId)}${e.reason === undefined ? '' : ` (${e.reason.code})`}`)),
        'sync:paused': (e) =>
          emit(line('sync:paused', e, `paused    sync ${e.until === undefined ? 'until kitsync sync resume' : `until ${new Date(e.until).toISOString()}`}`)),
        'sync:resumed': (e) => emit(line('sync:resumed', e, 'resumed   sync')),
        // A person sees long catch-ups move (a line every few seconds) and each one end.
        ...(json ? {} : { 'sync:progress': (e: SyncProgressEvent) => progressLine(e, (human) => emit(line('sync:progress', e, () => human(who(e.device))))) }),
        'device:joined': (e) => {
          names.set(e.peerId, e.name)
          emit(line('device:joined', e, `joined    ${e.name} ${e.peerId}`))
        },
        'device:revoked': (e) => emit(line('device:revoked', e, `revoked   ${e.name} ${e.peerId}`)),
        'device:revoked-self': (e) =>
          emit(
            line(
              'device:revoked-self',
              e,
              `revoked   this device, by ${e.revokedBy}${e.reason === undefined ? '' : ` (${e.reason})`}: the other devices refuse it`,
            ),
            'warn',
          ),
      },
    })
    const offRefused = running.invites.on('refused', (e) => emit(line('pairing:refused', e, `refused   ${e.deviceId}: ${e.code}`), 'warn'))
    for (const d of await running.workspace.devices()) names.set(d.peerId, d.name)
    await logging.debugTo((scope, message, err) =>
      emit(line('debug', { scope, message }, `debug     ${scope}: ${message}${err instanceof Error ? `: ${err.message}` : ''}`), 'debug'),
    )
    const info = await running.workspace.info()
    const net = await running.networkStatus()
    if (json) {
      const http = running.http === undefined ? {} : { http: running.http.url }
      io.out(
        JSON.stringify({ event: 'started', pid: process.pid, socket: running.paths.socket, ...http, ...info, listen: net.listen, discovery: net.discovery }) +
          '\n',
      )
    } else {
      io.out(
        [
          `kitsync peer running (pid ${process.pid})`,
          `  device    ${info.deviceId}`,
          `  workspace ${info.name} (${info.workspaceId})`,
          `  home      ${info.home}`,
          `  control   ${running.paths.socket}`,
          ...(running.http === undefined ? [] : [`  http      ${running.http.url} (token: kitsync dashboard --json)`]),
          ...net.listen.map((a, i) => `  ${i === 0 ? 'listening' : '         '} ${a}`),
          `  mDNS      ${net.discovery.mdns}${net.discovery.reason === undefined ? '' : ` (${net.discovery.reason})`}`,
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      )
    }
    for (const l of held) io.out(l())
    held = undefined
    const signal = await io.interrupted()
    offRefused()
    await running.stop()
    if (opts.json === true) io.out(JSON.stringify({ event: 'stopped', signal }) + '\n')
    else io.out(`kitsync peer stopped (${signal})\n`)
  })
  registerService(peer, io)
}

const PROGRESS_LINE_MS = 3000

/** For a person: each exchange's end, and while a long one runs a line at most every PROGRESS_LINE_MS per device. */
function progressLines(): (e: SyncProgressEvent, show: (human: (device: string) => string) => void) => void {
  const shown = new Map<string, number>()
  return (e, show) => {
    const now = Date.now()
    const last = e.done === 0 ? undefined : shown.get(e.device)
    if (last === undefined) shown.set(e.device, now)
    if (e.done === e.total) {
      shown.delete(e.device)
      show((device) => `synced    ${device}: ${e.total} collection${e.total === 1 ? '' : 's'}, ${formatBytes(e.bytes)} in`)
    } else if (last !== undefined && now - last >= PROGRESS_LINE_MS) {
      shown.set(e.device, now)
      show((device) => `syncing   ${device}: ${e.done}/${e.total} collections, ${formatBytes(e.bytes)} in`)
    }
  }
}

/** `peer start --headless`: JSON log lines (pino) on stdout; SIGTERM stops cleanly with exit 0. */
export type StartFlags = NetworkFlags &
  LogFlags & {
    name?: string
    headless?: boolean
    relay?: boolean
    items?: string
    localOnly?: string
    detach?: boolean
    httpPort?: number
    http?: boolean
  }

function parsePort(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) throw new KitsyncError('INVALID_ARGUMENT', `--http-port wants a port number (0-65535), not ${JSON.stringify(value)}`)
  return n
}

/** The `peer start` flags as Peer.start options (the same for both modes). */
function startOptions(io: CliIO, home: string | undefined, options: StartFlags) {
  return {
    home: resolveHome(home, io.env),
    ...(options.name === undefined ? {} : { name: options.name }),
    ...peerOptionsFrom(options),
    ...(options.relay === true ? { relay: true } : {}),
    ...(options.items === undefined ? {} : { items: splitList(options.items) }),
    ...(options.localOnly === undefined ? {} : { localOnly: splitList(options.localOnly) }),
    http: options.http === false ? (false as const) : options.httpPort === undefined ? {} : { port: options.httpPort },
  }
}

async function runHeadless(io: CliIO, home: string | undefined, options: StartFlags): Promise<void> {
  const log = (await import('../headless-log.js')).headlessLog(logOptionsFrom(options).headless)
  const running = await (
    await import('../../daemon/peer.js')
  ).Peer.start({
    ...startOptions(io, home, options),
    listeners: {
      // At --log-level debug: what changed and what came in (collection and key, never values).
      change: (e) => log.event('change', { collection: e.collection, key: e.key, op: e.op, source: e.source }, 'debug'),
      'sync:update': (e) => log.event('sync:update', e, 'debug'),
      'sync:connected': (e) => log.event('sync:connected', e),
      'sync:offline': (e) => log.event('sync:offline', e),
      'sync:paused': (e) => log.event('sync:paused', e),
      'sync:resumed': (e) => log.event('sync:resumed', e),
      'device:joined': (e) => log.event('device:joined', e),
      'device:revoked': (e) => log.event('device:revoked', e),
      'device:revoked-self': (e) => log.event('device:revoked-self', e, 'warn'),
    },
  })
  running.invites.on('refused', (e) => log.event('pairing:refused', e, 'warn'))
  running.strangers.on('connection-refused', (e) => log.event('connection:refused', e, 'warn'))
  running.blind.client.on('live', (e) => log.event('blind:live', e))
  running.blind.client.on('closed', (e) =>
    log.event('blind:closed', e.error === undefined ? { peerId: e.peerId } : { peerId: e.peerId, code: e.error.code, message: e.error.message }),
  )
  log.knowDevices(await running.workspace.devices())
  await logOptionsFrom(options).debugTo(log.debugSink)
  const info = await running.workspace.info()
  const net = await running.networkStatus()
  const self = net.devices.find((d) => d.peerId === info.deviceId)
  log.event('started', {
    socket: running.paths.socket,
    ...(running.http === undefined ? {} : { http: running.http.url }),
    ...info,
    listen: net.listen,
    discovery: net.discovery,
    relay: options.relay === true,
    role: running.workspace.isUntrusted(info.deviceId) ? 'untrusted' : self === undefined ? 'not a member yet' : 'trusted',
  })
  const signal = await io.interrupted()
  // Refusals still in an open window are summarised before the stop, so 'stopping' and
  // 'stopped' stay the last two lines of the log.
  running.strangers.flush()
  log.event('stopping', { signal })
  await running.stop()
  log.event('stopped', { signal })
  log.flush()
  log.close()
}
