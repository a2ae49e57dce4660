import type { Command } from 'commander'
import type { DeviceRecord } from '../../core/workspace-types.js'
import { countedDevices, deviceLimitOf } from '../../core/device-limit.js'
import { homePaths, readWorkspaceConfig, resolveHome } from '../../store/home.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { seenText, shortId } from '../device-label.js'
import { registerLimit } from './devices-limit.js'

const when = (t: number | undefined): string => (t === undefined || t === 0 ? '-' : new Date(t).toISOString().replace('T', ' ').slice(0, 19))

export function formatDeviceRecords(devices: DeviceRecord[], limit?: number): string {
  if (devices.length === 0) return 'no devices yet (kitsync pair adds the first)\n'
  const lines = [`${'DEVICE'.padEnd(10)}  ${'NAME'.padEnd(16)}  ${'STATE'.padEnd(9)}  ${'ADDED BY'.padEnd(10)}  ${'ADDED'.padEnd(19)}  LAST SEEN`]
  for (const d of devices) {
    lines.push(
      `${shortId(d.peerId).padEnd(10)}  ${(d.name + (d.self ? ' *' : '')).slice(0, 16).padEnd(16)}  ${(d.state === 'trusted' && d.role === 'untrusted' ? 'untrusted' : d.state).padEnd(9)}  ${shortId(d.addedBy).padEnd(10)}  ${when(d.addedAt).padEnd(19)}  ${d.self ? 'this device' : seenText(d.lastSeen)}`,
    )
  }
  if (limit !== undefined) {
    const counted = countedDevices(devices)
    lines.push('', `${counted.length} of ${limit} devices count toward the limit (every device not revoked): ${counted.map((d) => d.name).join(', ')}`)
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  const devicesCommand = program
    .command('devices')
    .description('list every device of the workspace: who added it and when, last seen, trusted, untrusted (a storage/relay peer) or revoked')
  example(devicesCommand, 'kitsync devices --json').action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const devices = await withWorkspace(io, opts, (ws) => ws.devices())
    const limit = deviceLimitOf(await readWorkspaceConfig(homePaths(resolveHome(opts.home, io.env))))
    print(io, opts, devices, () => formatDeviceRecords(devices, limit))
  })
  registerLimit(devicesCommand, io)
}
