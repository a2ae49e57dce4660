import type { Command } from 'commander'
import type { CollectionInfo } from '../../core/workspace-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function formatCollections(collections: CollectionInfo[]): string {
  if (collections.length === 0) return 'no collections yet\n'
  const width = Math.max(10, ...collections.map((c) => c.name.length))
  const lines = [`${'COLLECTION'.padEnd(width)}  ${'RECORDS'.padStart(8)}  ${'BYTES'.padStart(10)}  ${'KIND'.padEnd(10)}  POLICY`]
  for (const c of collections) {
    const conflicts = (c.openConflicts ?? 0) > 0 ? `  ${c.openConflicts} open conflicts` : ''
    lines.push(
      c.error === undefined
        ? `${c.name.padEnd(width)}  ${String(c.records).padStart(8)}  ${String(c.bytes).padStart(10)}  ${(c.kind ?? '').padEnd(10)}  ${c.policy ?? ''}${conflicts}`
        : `${c.name.padEnd(width)}  ${c.error.code}: ${c.error.message}`,
    )
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  example(
    program.command('list').description('list collections with their record counts, stored bytes, kind and conflict policy'),
    'kitsync list --json',
  ).action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const collections = await withWorkspace(io, opts, (ws) => ws.list())
    print(io, opts, collections, () => formatCollections(collections))
  })
}
