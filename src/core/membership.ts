import { isJsonObject, type JsonValue } from './json.js'

/**
 * Who belongs to the workspace. Kept in the internal collection `_members`, which syncs like
 * any other: one record per device id, saying who added it and when. Collections whose name
 * starts with `_` are kitsync's own: apps cannot write them and `list` does not show them.
 */
export const MEMBERS_COLLECTION = '_members'

export interface Member {
  name: string
  addedBy: string
  addedAt: number
}

export function isInternalCollection(name: string): boolean {
  return name.startsWith('_')
}

export function toMember(value: JsonValue | undefined): Member | undefined {
  if (!isJsonObject(value)) return undefined
  const { name, addedBy, addedAt } = value
  if (typeof name !== 'string' || typeof addedBy !== 'string' || typeof addedAt !== 'number') return undefined
  return { name, addedBy, addedAt }
}
