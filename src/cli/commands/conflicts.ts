import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { hlcTime } from '../../core/hlc.js'
import { parseJson, type JsonValue } from '../../core/json.js'
import { nodeTagOf } from '../../core/hlc.js'
import type { ConflictView, DeviceRecord, ResolveChoice } from '../../core/workspace-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

/** Device names by device tag (the last characters of the id, as conflicts name a version's device). */
export function namesByTag(devices: readonly DeviceRecord[]): Record<string, string> {
  return Object.fromEntries(devices.map((d) => [nodeTagOf(d.peerId), d.name]))
}

/** `--take NAME`: a device name is turned into its tag; anything else (a tag, a stamp) is passed on. */
export function takeOf(take: string, devices: readonly DeviceRecord[]): string {
  const named = devices.filter((d) => d.name === take)
  if (named.length > 1)
    throw new KitsyncError(
      'INVALID_ARGUMENT',
      `${named.length} devices are named ${JSON.stringify(take)}: give the tag instead (${named.map((d) => nodeTagOf(d.peerId)).join(', ')})`,
    )
  return named[0] === undefined ? take : nodeTagOf(named[0].peerId)
}

export function formatConflicts(conflicts: ConflictView[], names: Record<string, string> = {}): string {
  if (conflicts.length === 0) return 'no open conflicts\n'
  const lines: string[] = []
  for (const c of conflicts) {
    lines.push(`${c.id}  ${c.collection}/${c.key}${c.field === undefined ? '' : `.${c.field}`}  (${c.versions.length} versions)`)
    for (const v of c.versions) {
      const when = new Date(hlcTime(v.hlc)).toISOString()
      lines.push(
        `  ${names[v.device] === undefined ? v.device : `${names[v.device]} (${v.device})`}  ${when}  ${v.value === undefined ? '(deleted)' : JSON.stringify(v.value)}`,
      )
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
    const [conflicts, devices] = await withWorkspace(io, opts, async (ws) => [await ws.conflicts(collection), await ws.devices()] as const)
    const names = namesByTag(devices)
    // --json: each version also carries its device's name (when the device is known).
    const shown = conflicts.map((c) => ({ ...c, versions: c.versions.map((v) => (names[v.device] === undefined ? v : { ...v, name: names[v.device] })) }))
    print(io, opts, shown, () => formatConflicts(conflicts, names))
  })
  example(
    program
      .command('resolve')
      .description('settle an open conflict: take one version, or write a new value')
      .argument('<collection>', 'collection name')
      .argument('<id>', 'conflict id (or its first 4+ characters), from kitsync conflicts')
      .option('--take <version>', 'the version to keep: its device name (as kitsync conflicts shows it), device tag, or stamp')
      .option('--value <json>', 'write this value instead'),
    'kitsync resolve alerts 0k3j9x2a1b --take laptop',
    'kitsync resolve alerts 0k3j9x2a1b --take Qm3xYz12',
    `kitsync resolve alerts 0k3j9x2a1b --value '{"symbol":"AAPL","price":200}'`,
  ).action(async (collection: string, id: string, flags: { take?: string; value?: string }, cmd: Command) => {
    const opts = globals(cmd)
    if ((flags.take === undefined) === (flags.value === undefined)) throw new KitsyncError('INVALID_ARGUMENT', 'give exactly one of --take or --value')
    const value = flags.value === undefined ? undefined : parseJson(flags.value, 'the value')
    const r = await withWorkspace(io, opts, async (ws) => {
      const choice: ResolveChoice = flags.take !== undefined ? { take: takeOf(flags.take, await ws.devices()) } : { value: value as JsonValue }
      return ws.resolve(collection, id, choice)
    })
    print(
      io,
      opts,
      r,
      () =>
        `resolved: ${collection}/${r.key}${r.field === undefined ? '' : `.${r.field}`} = ${r.value === undefined ? '(deleted)' : JSON.stringify(r.value)}\n`,
    )
  })
}
