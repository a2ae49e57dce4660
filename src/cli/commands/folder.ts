import { resolve } from 'node:path'
import type { Command } from 'commander'
import { folders } from '../../api/folders.js'
import { KitsyncError } from '../../core/errors.js'
import type { FolderListItem, FolderSelectionChange, FolderStatusView } from '../../core/folder-types.js'
import { formatRetention, parseHistorySetting, type HistoryRetention } from '../../core/history-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { registerFolderHistory } from './folder-history.js'
import { formatBytes } from './stats.js'

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
}

/** `512K`, `1M`, `2MiB`, `1048576` as bytes (binary units). */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim())
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()]
  const bytes = m === null || unit === undefined ? NaN : Math.round(Number(m[1]) * unit)
  if (!Number.isFinite(bytes) || bytes <= 0 || bytes > 1024 ** 3)
    throw new KitsyncError('INVALID_ARGUMENT', `--max-file-size ${value}: expected a size such as 512K, 1M or 2MiB (at most 1G)`)
  return bytes
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

export function formatFolders(list: FolderListItem[]): string {
  if (list.length === 0) return 'no shared folders (kitsync folder add PATH --name NAME)\n'
  const lines = [`${'NAME'.padEnd(16)}  ${'STATE'.padEnd(9)}  ${'FILES'.padStart(6)}  ${'BYTES'.padStart(10)}  PATH`]
  for (const f of list) {
    const where = f.path ?? 'not here'
    lines.push(
      `${f.name.padEnd(16)}  ${f.state.padEnd(9)}  ${String(f.files).padStart(6)}  ${formatBytes(f.bytes).padStart(10)}  ${where}${f.error === undefined ? '' : `  (${f.error.code}: ${f.error.message})`}`,
    )
  }
  return lines.join('\n') + '\n'
}

export function formatFolderStatus(views: FolderStatusView[]): string {
  const lines: string[] = []
  for (const v of views) {
    const counts = Object.entries(v.counts)
      .map(([state, n]) => `${n} ${state}`)
      .join(', ')
    lines.push(`${v.name} (${v.path}): ${counts === '' ? 'empty' : counts}`)
    for (const f of v.files) {
      if (f.state === 'synced' && views.length > 1) continue
      lines.push(`  ${f.state.padEnd(13)}  ${f.path}${f.conflictCopy === undefined ? '' : `  (other version: ${f.conflictCopy})`}`)
    }
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  const folder = example(
    program.command('folder').description('shared folders: files kept in sync between devices, text merged line by line (needs the running peer)'),
    'kitsync folder add ~/sim --name sim --exclude "out/**"',
  )
  example(
    folder
      .command('add')
      .description(
        "share a folder, or place an already shared one here (its files are merged with the workspace's; a file that differs is kept, and the workspace's version saved beside it as NAME.conflict-DEVICE-TIME.ext)",
      )
      .argument('<path>', 'the folder on this device (created if missing)')
      .requiredOption('--name <name>', "the folder's name in the workspace (the same on every device)")
      .option('--include <glob>', 'sync only what matches (repeatable; synced to every device)', collect)
      .option('--exclude <glob>', 'leave out what matches (repeatable; synced to every device)', collect)
      .option('--max-file-size <size>', 'larger files are not synced (default 1M)'),
    'kitsync folder add ~/sim --name sim --exclude "out/**" --max-file-size 2M',
    'kitsync folder add ~/sim-laptop --name sim     # on the second device: the same folder, placed here',
  ).action(async (path: string, options: { name: string; include?: string[]; exclude?: string[]; maxFileSize?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const maxFileSize = options.maxFileSize === undefined ? undefined : parseSize(options.maxFileSize)
    const item = await withWorkspace(
      io,
      opts,
      (ws) =>
        folders(ws).add({
          path: resolve(path),
          name: options.name,
          ...(options.include === undefined ? {} : { include: options.include }),
          ...(options.exclude === undefined ? {} : { exclude: options.exclude }),
          ...(maxFileSize === undefined ? {} : { maxFileSize }),
        }),
      { mode: 'peer' },
    )
    print(io, opts, item, () => `folder ${item.name} placed at ${item.path ?? '?'}: ${item.files} files, ${formatBytes(item.bytes)}\n`)
  })
  example(
    folder.command('list').description('the workspace\'s shared folders, where each is placed on this device (or "not here"), files, bytes, state'),
    'kitsync folder list --json',
  ).action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const list = await withWorkspace(io, opts, (ws) => folders(ws).list(), { mode: 'peer' })
    print(io, opts, list, () => formatFolders(list))
  })
  example(
    folder
      .command('status')
      .description('per file: synced, local changes, incoming, conflict, local only or excluded')
      .argument('[name]', 'one folder (default: every folder placed here)'),
    'kitsync folder status sim',
    'kitsync folder status --json',
  ).action(async (name: string | undefined, _options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const views = await withWorkspace(io, opts, (ws) => folders(ws).status(name), { mode: 'peer' })
    print(io, opts, name === undefined ? views : views[0], () => formatFolderStatus(views))
  })
  example(
    folder.command('remove').description('stop syncing a folder on this device; its files stay').argument('<name>', 'the folder'),
    'kitsync folder remove sim',
  ).action(async (name: string, _options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const r = await withWorkspace(io, opts, (ws) => folders(ws).remove(name), { mode: 'peer' })
    print(io, opts, r, () => `folder ${r.name} no longer syncs here; its files stay in ${r.path}\n`)
  })
  example(
    folder
      .command('set')
      .description("change a shared folder's globs, size cap or history retention (synced: every device where it is placed rescans under them)")
      .argument('<name>', 'the folder')
      .option('--include <glob>', 'sync only what matches (repeatable; replaces the include list)', collect)
      .option('--no-include', 'clear the include list (everything not excluded syncs)')
      .option('--exclude <glob>', 'leave out what matches (repeatable; replaces the exclude list)', collect)
      .option('--no-exclude', 'clear the exclude list')
      .option('--max-file-size <size>', 'larger files are not synced (1M is the default)')
      .option('--history <retention>', 'off, default (100 versions, 90 days), a version count (50), days (30d) or both (50,30d)'),
    'kitsync folder set sim --exclude "out/**" --exclude "*.log"',
    'kitsync folder set sim --no-include --max-file-size 4M',
    'kitsync folder set sim --history 50,30d',
  ).action(async (name: string, flags: { include?: string[] | false; exclude?: string[] | false; maxFileSize?: string; history?: string }, cmd: Command) => {
    const opts = globals(cmd)
    const change: FolderSelectionChange = {
      ...(flags.include === undefined ? {} : { include: flags.include === false ? [] : flags.include }),
      ...(flags.exclude === undefined ? {} : { exclude: flags.exclude === false ? [] : flags.exclude }),
      ...(flags.maxFileSize === undefined ? {} : { maxFileSize: parseSize(flags.maxFileSize) }),
    }
    const setting = flags.history === undefined ? undefined : parseHistorySetting(flags.history)
    if (setting === undefined && Object.keys(change).length === 0)
      throw new KitsyncError('INVALID_ARGUMENT', 'give what to change: --include, --exclude, --no-include, --no-exclude, --max-file-size or --history')
    const r = await withWorkspace(
      io,
      opts,
      async (ws) => ({
        name,
        ...(setting === undefined ? {} : { history: (await folders(ws).setHistory(name, setting)).history }),
        ...(Object.keys(change).length === 0 ? {} : await folders(ws).setSelection(name, change)),
      }),
      { mode: 'peer' },
    )
    print(io, opts, r, () => formatFolderSet(r))
  })
  registerFolderHistory(folder, io)
}

function formatFolderSet(r: { name: string; history?: HistoryRetention; include?: string[]; exclude?: string[]; maxFileSize?: number }): string {
  const lines: string[] = []
  if (r.include !== undefined) {
    const globs = (list: string[] | undefined): string => (list === undefined || list.length === 0 ? '(none)' : list.join(' '))
    lines.push(`folder ${r.name}: include ${globs(r.include)}; exclude ${globs(r.exclude)}; files up to ${formatBytes(r.maxFileSize ?? 0)}`)
  }
  if (r.history !== undefined) lines.push(`folder ${r.name} keeps ${formatRetention(r.history)} of each file`)
  return lines.join('\n') + '\n'
}
