import type { Command } from 'commander'
import { example, globals, withWorkspace, type CliIO } from '../context.js'
import { deviceLabel } from '../device-label.js'

export function register(program: Command, io: CliIO): void {
  example(
    program.command('log').description('the audit log: joins, revocations, refused connections, sync errors (synced between devices)'),
    'kitsync log --json',
  ).action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const [entries, devices] = await withWorkspace(io, opts, async (ws) => [await ws.log(), await ws.devices()] as const)
    const names = Object.fromEntries(devices.map((d) => [d.peerId, d.name]))
    if (opts.json === true) {
      for (const e of entries) io.out(JSON.stringify(e) + '\n')
      return
    }
    if (entries.length === 0) io.out('the audit log is empty\n')
    for (const e of entries) {
      io.out(
        `${new Date(e.at).toISOString()}  ${e.type.padEnd(18)}  by ${deviceLabel(e.device, names)}${e.peer === undefined ? '' : `  peer ${deviceLabel(e.peer, names)}`}  ${e.reason}\n`,
      )
    }
  })
}
