import { toKitsyncError, type KitsyncError } from '../core/errors.js'
import type { ConflictEvent, ConflictView, ResolveChoice, Workspace } from '../core/workspace-types.js'

/** Decides an `ask` conflict: a choice settles it, undefined leaves it open for a person. */
export type ConflictResolver = (conflict: ConflictView | ConflictEvent) => ResolveChoice | undefined | Promise<ResolveChoice | undefined>

export interface ResolverOptions {
  /** Called when settling a conflict fails (it then stays open). */
  onError?: (error: KitsyncError, conflict: ConflictView | ConflictEvent) => void
}

/**
 * Settle the open conflicts of a collection with a function: those already recorded, then
 * each new one as it is found. Works in-process and through a running peer alike.
 * Returns the function that stops it.
 *
 *   const stop = await resolveWith(ws, 'stories', (c) => ({ take: c.versions[0].device }))
 */
export async function resolveWith(ws: Workspace, collection: string, resolver: ConflictResolver, options: ResolverOptions = {}): Promise<() => void> {
  let stopped = false
  const settle = async (conflict: ConflictView | ConflictEvent): Promise<void> => {
    try {
      const choice = await resolver(conflict)
      if (choice !== undefined && !stopped) await ws.resolve(collection, conflict.id, choice)
    } catch (err) {
      const error = toKitsyncError(err)
      // Another device (or an earlier call) may have settled it first: nothing left to do.
      if (error.code !== 'UNKNOWN_CONFLICT') options.onError?.(error, conflict)
    }
  }
  const off = ws.on('sync:conflict', (event) => {
    if (event.collection === collection && event.resolution === 'open') void settle(event)
  })
  for (const open of await ws.conflicts(collection)) await settle(open)
  return () => {
    stopped = true
    off()
  }
}
