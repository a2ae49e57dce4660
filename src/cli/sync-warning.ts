import type { Workspace } from '../core/workspace-types.js'
import type { CliIO } from './context.js'

/**
 * After a write (set, append, add, remove, delete): if this device does not sync the
 * collection (outside its items, or local-only), say on stderr that the write stays here. A
 * warning, not an error: the write is done and kept; a user may mean it.
 */
export async function warnIfNotSynced(io: CliIO, ws: Pick<Workspace, 'items'>, collection: string): Promise<void> {
  const view = await ws.items()
  const c = view.collections.find((x) => x.name === collection)
  if (c === undefined || c.syncs) return
  const fix =
    c.reason === 'local-only'
      ? `it is local-only here (kitsync items remove ${collection} --local-only to sync it)`
      : `it is not among this device's items (kitsync items add ${collection} to sync it)`
  io.err(`kitsync: warning: ${collection} does not sync from this device, so this write stays here: ${fix}\n`)
}
