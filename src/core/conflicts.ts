import { KitsyncError } from './errors.js'
import { isJsonObject, type JsonValue } from './json.js'
import { shortHash } from './kinds.js'
import type { OpenConflict } from './conflict-map.js'
import type { RecordCollection } from './record-collection.js'
import type { DetectedConflict } from './record-resolve.js'
import type { ConflictEvent, ConflictVersion, ResolveChoice } from './workspace-types.js'

/**
 * What a collection's conflict policy does with concurrent writes found after a merge:
 *
 * - `merge`: fields merge; a field written on both sides keeps the later write by clock.
 * - `latest_wins`: the whole record as last written (by clock) wins.
 * - `keep_both`: the latest version stays under the key; each other version is kept as the
 *   record `<key>~conflict-<device>-<stamp>`, visible to apps and the CLI.
 * - `ask`: the conflict is recorded in the collection (synced, so every device lists it);
 *   the latest version shows until `resolve` picks one or writes a new value.
 *
 * Every device that merges the update finds the same conflict (same id) and settles it the
 * same way, so the writes they make to settle it are the same and merge to one result.
 */

export function conflictId(collection: string, c: DetectedConflict): string {
  return shortHash([collection, c.key, c.field ?? '', ...c.versions.map((v) => v.hlc).sort()].join('\u0000'))
}

export function keepBothKey(key: string, version: ConflictVersion): string {
  return `${key}~conflict-${version.device}-${version.hlc.slice(0, 13)}`
}

/** Apply the collection's policy to one detected conflict; returns the event to emit. */
export function settleConflict(collection: RecordCollection, c: DetectedConflict, origin: unknown, detectedBy: string, now: number): ConflictEvent {
  const id = conflictId(collection.name, c)
  const base = {
    id,
    collection: collection.name,
    key: c.key,
    ...(c.field === undefined ? {} : { field: c.field }),
    policy: collection.policy,
    versions: c.versions,
    at: now,
  }
  switch (collection.policy) {
    case 'merge':
      collection.collapse(c.key, origin)
      return { ...base, resolution: 'merged' }
    case 'latest_wins':
      collection.collapse(c.key, origin)
      return { ...base, resolution: 'latest' }
    case 'keep_both': {
      const current = collection.get(c.key)
      for (const v of c.versions) {
        if (v === c.winner || v.value === undefined) continue
        const kept = c.field === undefined ? v.value : { ...(isJsonObject(current) ? current : {}), [c.field]: v.value }
        const copyKey = keepBothKey(c.key, v)
        if (!collection.has(copyKey)) collection.set(copyKey, kept, origin)
      }
      collection.collapse(c.key, origin)
      return { ...base, resolution: 'kept-both' }
    }
    case 'ask': {
      const open: OpenConflict = { id, key: c.key, ...(c.field === undefined ? {} : { field: c.field }), versions: c.versions, at: now, detectedBy }
      collection.recordConflict(open, origin)
      return { ...base, resolution: 'open' }
    }
  }
}

/** Settle an open conflict: write the chosen value as a new write, and forget the conflict. */
export function resolveConflict(
  collection: RecordCollection,
  id: string,
  choice: ResolveChoice,
  origin: unknown,
): { key: string; field?: string; value: JsonValue | undefined } {
  const open = collection.openConflicts().find((c) => c.id === id || (id.length >= 4 && c.id.startsWith(id)))
  if (open === undefined)
    throw new KitsyncError('UNKNOWN_CONFLICT', `no open conflict ${JSON.stringify(id)} in ${collection.name} (see kitsync conflicts)`, {
      details: { collection: collection.name },
    })
  let value: JsonValue | undefined
  if ('value' in choice) value = choice.value
  else {
    const version = open.versions.find((v) => v.hlc === choice.take || v.device === choice.take || (choice.take.length >= 4 && choice.take.endsWith(v.device)))
    if (version === undefined) {
      throw new KitsyncError(
        'INVALID_ARGUMENT',
        `conflict ${open.id} has no version ${JSON.stringify(choice.take)}; versions: ${open.versions.map((v) => `${v.device} (${v.hlc})`).join(', ')}`,
      )
    }
    value = version.value
  }
  collection.doc.transact(() => {
    if (value === undefined) collection.delete(open.key, origin)
    else collection.set(open.key, value, origin, open.field)
    collection.clearConflict(open.id, origin)
  }, origin)
  collection.collapse(open.key, origin)
  collection.dropSettledConflicts(origin)
  return { key: open.key, ...(open.field === undefined ? {} : { field: open.field }), value }
}
