import type { Command } from 'commander'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('init')
      .description('create the device identity and workspace in the home folder (does nothing if they exist)')
      .option('--name <name>', 'name of a new workspace', 'workspace'),
    'kitsync init --name "trading desk"',
  ).action(async (options: { name: string }, cmd: Command) => {
    const opts = globals(cmd)
    const info = await withWorkspace(io, opts, (ws) => ws.info(), { name: options.name })
    print(io, opts, info, () => `workspace ${info.name} (${info.workspaceId})\ndevice    ${info.deviceId}\nhome      ${info.home}\n`)
  })
}
