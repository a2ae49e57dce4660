import type { Command } from 'commander'
import { resolveHome } from '../../store/home.js'
import { example, globals, networkOptions, peerOptionsFrom, type CliIO, type NetworkFlags } from '../context.js'

export function register(program: Command, io: CliIO): void {
  const peer = example(program.command('peer').description('run the peer of this device'), 'kitsync peer start --json')
  example(
    networkOptions(
      peer
        .command('start')
        .description('run the peer in the foreground: owns the store, syncs with the other devices, serves the control socket; Ctrl-C or SIGTERM stops it cleanly')
        .option('--name <name>', 'name of the workspace if the home folder has none yet'),
    ),
    'kitsync peer start',
    'kitsync peer start --listen /ip4/0.0.0.0/tcp/4771 --bootstrap /ip4/203.0.113.7/tcp/4771/p2p/12D3KooW...',
  ).action(async (options: NetworkFlags & { name?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const running = await (await import('../../daemon/peer.js')).Peer.start({
      home: resolveHome(opts.home, io.env),
      ...(options.name === undefined ? {} : { name: options.name }),
      ...peerOptionsFrom(options),
    })
    const info = await running.workspace.info()
    const net = await running.networkStatus()
    if (opts.json === true) {
      io.out(JSON.stringify({ event: 'started', pid: process.pid, socket: running.paths.socket, ...info, listen: net.listen, discovery: net.discovery }) + '\n')
    } else {
      io.out(
        [
          `kitsync peer running (pid ${process.pid})`,
          `  device    ${info.deviceId}`,
          `  workspace ${info.name} (${info.workspaceId})`,
          `  home      ${info.home}`,
          `  control   ${running.paths.socket}`,
          ...net.listen.map((a, i) => `  ${i === 0 ? 'listening' : '         '} ${a}`),
          `  mDNS      ${net.discovery.mdns}${net.discovery.reason === undefined ? '' : ` (${net.discovery.reason})`}`,
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      )
    }
    const offs = [
      running.workspace.on('sync:connected', (e) => io.out(opts.json === true ? JSON.stringify({ event: 'sync:connected', ...e }) + '\n' : `connected ${e.peerId}\n`)),
      running.workspace.on('sync:offline', (e) => io.out(opts.json === true ? JSON.stringify({ event: 'sync:offline', ...e }) + '\n' : `offline   ${e.peerId}${e.reason === undefined ? '' : ` (${e.reason.code})`}\n`)),
      running.workspace.on('device:joined', (e) => io.out(opts.json === true ? JSON.stringify({ event: 'device:joined', ...e }) + '\n' : `joined    ${e.name} ${e.peerId}\n`)),
      running.workspace.on('device:revoked', (e) => io.out(opts.json === true ? JSON.stringify({ event: 'device:revoked', ...e }) + '\n' : `revoked   ${e.name} ${e.peerId}\n`)),
      running.invites.on('refused', (e) => io.out(opts.json === true ? JSON.stringify({ event: 'pairing:refused', ...e }) + '\n' : `refused   ${e.deviceId}: ${e.code}\n`)),
    ]
    const signal = await io.interrupted()
    offs.forEach((off) => off())
    await running.stop()
    if (opts.json === true) io.out(JSON.stringify({ event: 'stopped', signal }) + '\n')
    else io.out(`kitsync peer stopped (${signal})\n`)
  })
}
