import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import type { DeviceView } from '../../core/workspace-types.js'
import { example, globals, print, type CliIO } from '../context.js'
import { openForCli } from '../peer-open.js'
import { seenText, shortId } from '../device-label.js'

const ago = (t: number | undefined): string => (t === undefined ? '-' : `${Math.max(0, Math.round((Date.now() - t) / 1000))}s ago`)
const SEEN_WIDTH = 30

export function formatDevices(devices: DeviceView[]): string {
  const lines = [`${'DEVICE'.padEnd(10)}  ${'NAME'.padEnd(16)}  ${'STATE'.padEnd(12)}  ${'LAST SEEN'.padEnd(SEEN_WIDTH)}  ${'LAST SYNC'.padEnd(10)}  ADDRESS`]
  for (const d of devices) {
    lines.push(
      `${shortId(d.peerId).padEnd(10)}  ${d.name.slice(0, 16).padEnd(16)}  ${d.state.padEnd(12)}  ${seenText(d.lastSeen).padEnd(SEEN_WIDTH)}  ${ago(d.lastSync).padEnd(10)}  ${d.address ?? '-'}`,
    )
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  example(
    program.command('peers').description('list the devices of the workspace and their connection state (needs the running peer)'),
    'kitsync peers --json',
  ).action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const ws = await openForCli(io, opts, { mode: 'peer' })
    try {
      const status = await ws.status()
      if (status.network === undefined) throw new KitsyncError('PEER_NOT_RUNNING', 'no peer is running: start one with kitsync peer start')
      const devices = status.network.devices
      print(io, opts, devices, () => formatDevices(devices))
    } finally {
      await ws.close()
    }
  })
}
