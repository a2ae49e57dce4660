import type { Command } from 'commander'
import type { ItemsChange, PatternChange } from '../../core/selection.js'
import type { ItemsView } from '../../core/sync-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

/** `a,b c` -> ['a', 'b', 'c'] */
export function splitList(values: string | string[]): string[] {
  return (Array.isArray(values) ? values : [values])
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

export function formatItems(view: ItemsView): string {
  const lines = [
    `items       ${view.items === null ? 'every collection (on-demand ones only when held or fetched)' : view.items.join(', ') || '(none)'}`,
    `local-only  ${view.localOnly.join(', ') || '-'}`,
    `on demand   ${view.onDemand.map((p) => `${p}*`).join(', ')}`,
  ]
  if (view.collections.length > 0) {
    const width = Math.max(10, ...view.collections.map((c) => c.name.length))
    lines.push('', `${'COLLECTION'.padEnd(width)}  SYNCS  WHY`)
    for (const c of view.collections) lines.push(`${c.name.padEnd(width)}  ${(c.syncs ? 'yes' : 'no').padEnd(5)}  ${c.reason}`)
  }
  return lines.join('\n') + '\n'
}

function change(localOnly: boolean | undefined, pc: PatternChange): ItemsChange {
  return localOnly === true ? { localOnly: pc } : { items: pc }
}

export function register(program: Command, io: CliIO): void {
  const items = example(
    program.command('items').description('what this device syncs (selective sync); with or without a running peer, changes apply at once'),
    'kitsync items',
    'kitsync items set watchlists,alerts',
    'kitsync items add journal',
    'kitsync items add scratch --local-only',
    'kitsync items all',
  )
  const run = async (cmd: Command, fn: (ws: Parameters<Parameters<typeof withWorkspace>[2]>[0]) => Promise<ItemsView>): Promise<void> => {
    const opts = globals(cmd)
    const view = await withWorkspace(io, opts, fn)
    print(io, opts, view, () => formatItems(view))
  }
  example(
    items.command('show', { isDefault: true }).description('show the items, the local-only collections and, for each collection here, whether it syncs'),
    'kitsync items show --json',
  ).action(async (_o: unknown, cmd: Command) => run(cmd, (ws) => ws.items()))
  example(
    items
      .command('set')
      .description('sync only these collections (names or patterns with * and ?, comma-separated)')
      .argument('<names...>', 'e.g. watchlists,alerts or "drawings.AAPL-*"')
      .option('--local-only', 'set the local-only list instead'),
    'kitsync items set watchlists,alerts',
    'kitsync items set scratch --local-only',
  ).action(async (names: string[], o: { localOnly?: boolean }, cmd: Command) => run(cmd, (ws) => ws.setItems(change(o.localOnly, { set: splitList(names) }))))
  example(
    items
      .command('add')
      .description('also sync these collections (or, with --local-only, keep them on this device only)')
      .argument('<names...>', 'names or patterns')
      .option('--local-only', 'add to the local-only list instead'),
    'kitsync items add journal',
    'kitsync items add scratch --local-only',
  ).action(async (names: string[], o: { localOnly?: boolean }, cmd: Command) => run(cmd, (ws) => ws.setItems(change(o.localOnly, { add: splitList(names) }))))
  example(
    items
      .command('remove')
      .description('stop syncing these items (the data already here stays), or remove them from the local-only list')
      .argument('<names...>', 'names or patterns, as listed by kitsync items')
      .option('--local-only', 'remove from the local-only list instead'),
    'kitsync items remove alerts',
  ).action(async (names: string[], o: { localOnly?: boolean }, cmd: Command) =>
    run(cmd, (ws) => ws.setItems(change(o.localOnly, { remove: splitList(names) }))),
  )
  example(
    items.command('all').description('sync every collection again (on-demand ones only when held or fetched); local-only ones stay local'),
    'kitsync items all',
  ).action(async (_o: unknown, cmd: Command) => run(cmd, (ws) => ws.setItems({ items: { set: null } })))
}
