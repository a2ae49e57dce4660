import type { Command } from 'commander'
import { folders } from '../../api/folders.js'
import { KitsyncError } from '../../core/errors.js'
import type { FileHistory, FileVersion } from '../../core/folder-versions.js'
import type { RestoreTarget } from '../../core/history-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { versionHead } from './history.js'
import { formatBytes } from './stats.js'

/**
 * `kitsync folder history NAME PATH` and `kitsync folder restore NAME PATH --version ID | --at TIME`:
 * under `folder` (not `kitsync history`) because a file is named by its folder and path, and both
 * need the running peer (the folder engine writes the restored file), where `history` reads a
 * collection's records from the home directly.
 */

function versionLine(v: FileVersion): string {
  const what = v.op === 'renamed' ? `renamed from ${v.from ?? '?'}` : v.op
  const content = v.op === 'removed' ? '' : `  ${formatBytes(v.size).padStart(9)}  ${v.hash.slice(0, 12)}`
  return `${versionHead(v.time, v.device, v.id)}  ${what.padEnd(8)}${content}${v.path === '' ? '' : `  ${v.path}`}`
}

export function formatFileHistory(h: FileHistory): string {
  if (h.versions.length === 0) return `no versions of ${h.path} are kept (history off for folder ${h.folder}?)\n`
  return h.versions.map(versionLine).join('\n') + '\n'
}

export function registerFolderHistory(folder: Command, io: CliIO): void {
  example(
    folder
      .command('history')
      .description("a file's versions, newest first: time, device, version id, op (added/modified/renamed/removed), size, hash")
      .argument('<name>', 'the folder')
      .argument('<path>', "the file's path in the folder ('/'-separated)"),
    'kitsync folder history sim scenarios/s1.yaml',
    'kitsync folder history sim scenarios/s1.yaml --json',
  ).action(async (name: string, path: string, _options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const h = await withWorkspace(io, opts, (ws) => folders(ws).history(name, path), { mode: 'peer' })
    print(io, opts, h, () => formatFileHistory(h))
  })
  example(
    folder
      .command('restore')
      .description(
        'write an old version of a file again, as a local change that syncs (a deleted file comes back); refused with FILE_CHANGED, writing nothing, when the file has an edit not captured yet',
      )
      .argument('<name>', 'the folder')
      .argument('<path>', "the file's path in the folder")
      .option('--version <id>', 'the version to restore: its id, from kitsync folder history')
      .option('--at <time>', 'restore the version current at this time: an ISO date or a duration back from now (2h, 3d)'),
    'kitsync folder restore sim scenarios/s1.yaml --version 0mywpiww0.0000.yKSUKPH5',
    'kitsync folder restore sim scenarios/s1.yaml --at 2h',
  ).action(async (name: string, path: string, flags: { version?: string; at?: string }, cmd: Command) => {
    const opts = globals(cmd)
    if ((flags.version === undefined) === (flags.at === undefined)) throw new KitsyncError('INVALID_ARGUMENT', 'give exactly one of --version or --at')
    const target: RestoreTarget = flags.version !== undefined ? { version: flags.version } : { at: flags.at as string }
    const r = await withWorkspace(io, opts, (ws) => folders(ws).restore(name, path, target), { mode: 'peer' })
    print(
      io,
      opts,
      r,
      () =>
        `restored ${name}/${path}${r.revived ? ' (it had been removed)' : ''} to the version of ${new Date(r.restored.time).toISOString()} by ${r.restored.device} (${formatBytes(r.restored.size)})\n`,
    )
  })
}
