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
  /**
   * `untrusted`: a storage/relay peer (the VPS, `kitsync pair --untrusted`). It is a member for
   * transport (it may connect, relay and keep the encrypted store) but never receives the
   * workspace keys nor any collection except TRANSPORT_COLLECTIONS. Absent: trusted.
   */
  role?: MemberRole
}

export type MemberRole = 'trusted' | 'untrusted'

/** The only collections exchanged with (or by) an untrusted peer: what it needs to gate transport. */
export const TRANSPORT_COLLECTIONS: ReadonlySet<string> = new Set(['_members', '_revoked'])

export function isInternalCollection(name: string): boolean {
  return name.startsWith('_')
}

/** Name prefix of a shared folder's manifest collection (`_folder.NAME`, daemon/folder-host.ts). */
export const FOLDER_COLLECTION_PREFIX = '_folder.'

export function isFolderCollection(name: string): boolean {
  return name.startsWith(FOLDER_COLLECTION_PREFIX)
}

export function toMember(value: JsonValue | undefined): Member | undefined {
  if (!isJsonObject(value)) return undefined
  const { name, addedBy, addedAt, role } = value
  if (typeof name !== 'string' || typeof addedBy !== 'string' || typeof addedAt !== 'number') return undefined
  return role === 'untrusted' ? { name, addedBy, addedAt, role } : { name, addedBy, addedAt }
}

/**
 * Revoked devices: one record per device id in `_revoked`. A grow-only set: revocation is
 * checked before membership, so no later or older `_members` update can bring a revoked
 * device back, and each device also keeps the ids it has seen revoked in its own store and
 * writes back any revocation that disappears from the synced set.
 */
export const REVOKED_COLLECTION = '_revoked'

export interface Revocation {
  revokedBy: string
  revokedAt: number
  reason?: string
}

export function toRevocation(value: JsonValue | undefined): Revocation | undefined {
  if (!isJsonObject(value)) return undefined
  const { revokedBy, revokedAt, reason } = value
  if (typeof revokedBy !== 'string' || typeof revokedAt !== 'number') return undefined
  return typeof reason === 'string' ? { revokedBy, revokedAt, reason } : { revokedBy, revokedAt }
}

/**
 * This device was revoked, as a trusted member told it (a signed REVOKED answer it verified,
 * docs/PROTOCOL.md). Kept in the device's local store; from then on it dials no one.
 */
export interface SelfRevocation {
  /** The member that revoked this device, and when (ms since the epoch). */
  revokedBy: string
  revokedAt: number
  reason?: string
  /** The member whose signed notice told this device. */
  toldBy?: string
  /** When this device learned it. */
  learnedAt: number
}

/** Key, in a device's local (never synced) store, of its own revocation once it learned it. */
export const SELF_REVOKED_KEY = 'revoked-self'

export function toSelfRevocation(value: JsonValue | undefined): SelfRevocation | undefined {
  const r = toRevocation(value)
  if (r === undefined || !isJsonObject(value) || typeof value.learnedAt !== 'number') return undefined
  return { ...r, learnedAt: value.learnedAt, ...(typeof value.toldBy === 'string' ? { toldBy: value.toldBy } : {}) }
}

/** The synced, append-only audit log: one record per event, keyed so keys never collide. */
export const AUDIT_COLLECTION = '_audit'

export const AUDIT_TYPES = ['device-joined', 'device-revoked', 'key-rotated', 'connection-refused', 'pairing-refused', 'sync-error', 'conflict'] as const
export type AuditType = (typeof AUDIT_TYPES)[number]

export interface AuditEntry {
  at: number
  /** The device that recorded the entry. */
  device: string
  type: AuditType
  /** The other device concerned, if any. */
  peer?: string
  reason: string
}

export function toAuditEntry(value: JsonValue | undefined): AuditEntry | undefined {
  if (!isJsonObject(value)) return undefined
  const { at, device, type, peer, reason } = value
  if (typeof at !== 'number' || typeof device !== 'string' || typeof type !== 'string' || typeof reason !== 'string') return undefined
  if (!(AUDIT_TYPES as readonly string[]).includes(type)) return undefined
  const entry: AuditEntry = { at, device, type: type as AuditType, reason }
  if (typeof peer === 'string') entry.peer = peer
  return entry
}

export const DEFAULT_MAX_DEVICES = 5
