import type { Command } from 'commander'
import type { DeviceRecord } from '../../core/workspace-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

const when = (t: number | undefined): string => (t === undefined || t === 0 ? '-' : new Date(t).toISOString().replace('T', ' ').slice(0, 19))

export function formatDeviceRecords(devices: DeviceRecord[]): string {
  if (devices.length === 0) return 'no devices yet (kitsync pair adds the first)\n'
  const short = (id: string): string => (id === '' ? '-' : '…' + id.slice(-8))
  const lines = [`${'DEVICE'.padEnd(10)}  ${'NAME'.padEnd(16)}  ${'STATE'.padEnd(9)}  ${'ADDED BY'.padEnd(10)}  ${'ADDED'.padEnd(19)}  LAST SEEN`]
  for (const d of devices) {
    lines.push(
      `${short(d.peerId).padEnd(10)}  ${(d.name + (d.self ? ' *' : '')).slice(0, 16).padEnd(16)}  ${(d.state === 'trusted' && d.role === 'untrusted' ? 'untrusted' : d.state).padEnd(9)}  ${short(d.addedBy).padEnd(10)}  ${when(d.addedAt).padEnd(19)}  ${d.self ? 'this device' : when(d.lastSeen)}`,
    )
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('devices')
      .description('list every device of the workspace: who added it and when, last seen, trusted, untrusted (a storage/relay peer) or revoked'),
    'kitsync devices --json',
  ).action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const devices = await withWorkspace(io, opts, (ws) => ws.devices())
    print(io, opts, devices, () => formatDeviceRecords(devices))
  })
}
