import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { hlcTime } from '../../core/hlc.js'
import { parseJson } from '../../core/json.js'
import type { ConflictView, ResolveChoice } from '../../core/workspace-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

export function formatConflicts(conflicts: ConflictView[]): string {
  if (conflicts.length === 0) return 'no open conflicts\n'
  const lines: string[] = []
  for (const c of conflicts) {
    lines.push(`${c.id}  ${c.collection}/${c.key}${c.field === undefined ? '' : `.${c.field}`}  (${c.versions.length} versions)`)
    for (const v of c.versions) {
      const when = new Date(hlcTime(v.hlc)).toISOString()
      lines.push(`  ${v.device}  ${when}  ${v.value === undefined ? '(deleted)' : JSON.stringify(v.value)}`)
    }
  }
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('conflicts')
      .description('list conflicts waiting for a decision (collections with the ask policy)')
      .argument('[collection]', 'only this collection'),
    'kitsync conflicts alerts',
  ).action(async (collection: string | undefined, _o: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const conflicts = await withWorkspace(io, opts, (ws) => ws.conflicts(collection))
    print(io, opts, conflicts, () => formatConflicts(conflicts))
  })
  example(
    program
      .command('resolve')
      .description('settle an open conflict: take one version, or write a new value')
      .argument('<collection>', 'collection name')
      .argument('<id>', 'conflict id (or its first 4+ characters), from kitsync conflicts')
      .option('--take <version>', 'the device tag (or stamp) of the version to keep')
      .option('--value <json>', 'write this value instead'),
    'kitsync resolve alerts 0k3j9x2a1b --take Qm3xYz12',
    `kitsync resolve alerts 0k3j9x2a1b --value '{"symbol":"AAPL","price":200}'`,
  ).action(async (collection: string, id: string, flags: { take?: string; value?: string }, cmd: Command) => {
    const opts = globals(cmd)
    if ((flags.take === undefined) === (flags.value === undefined)) throw new KitsyncError('INVALID_ARGUMENT', 'give exactly one of --take or --value')
    const choice: ResolveChoice = flags.take !== undefined ? { take: flags.take } : { value: parseJson(flags.value as string, 'the value') }
    const r = await withWorkspace(io, opts, (ws) => ws.resolve(collection, id, choice))
    print(
      io,
      opts,
      r,
      () =>
        `resolved: ${collection}/${r.key}${r.field === undefined ? '' : `.${r.field}`} = ${r.value === undefined ? '(deleted)' : JSON.stringify(r.value)}\n`,
    )
  })
}
