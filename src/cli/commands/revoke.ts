import type { Command } from 'commander'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('revoke')
      .description('revoke a device for good: every member refuses it as soon as the revocation reaches it')
      .argument('<device>', 'device id, a unique part of it (6+ characters), or its name')
      .option('--reason <text>', 'why, for the audit log'),
    'kitsync revoke old-phone --reason "lost on a train"',
  ).action(async (device: string, options: { reason?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const revoked = await withWorkspace(io, opts, (ws) => ws.revoke(device, options.reason))
    print(io, opts, revoked, () => `revoked ${revoked.name} (${revoked.peerId})\n`)
  })
}
