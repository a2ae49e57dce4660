import type { Command } from 'commander'
import { Peer } from '../../daemon/peer.js'
import { resolveHome } from '../../store/home.js'
import { example, globals, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  const peer = program.command('peer').description('run the peer of this device')
  example(
    peer
      .command('start')
      .description('run the peer in the foreground: owns the store and serves the control socket; Ctrl-C or SIGTERM stops it cleanly')
      .option('--name <name>', 'name of the workspace if the home folder has none yet'),
    'kitsync peer start',
    'kitsync peer start --home ~/.kitsync-work --json',
  ).action(async (options: { name?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const running = await Peer.start({ home: resolveHome(opts.home, io.env), ...(options.name === undefined ? {} : { name: options.name }) })
    const info = await running.workspace.info()
    if (opts.json === true) {
      io.out(JSON.stringify({ event: 'started', pid: process.pid, socket: running.control.path, ...info }) + '\n')
    } else {
      io.out(`kitsync peer running (pid ${process.pid})\n  device    ${info.deviceId}\n  workspace ${info.name} (${info.workspaceId})\n  home      ${info.home}\n  control   ${running.control.path}\nPress Ctrl-C to stop.\n`)
    }
    const signal = await io.interrupted()
    await running.stop()
    if (opts.json === true) io.out(JSON.stringify({ event: 'stopped', signal }) + '\n')
    else io.out(`kitsync peer stopped (${signal})\n`)
  })
}
