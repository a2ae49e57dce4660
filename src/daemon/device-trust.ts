import { KitsyncError } from '../core/errors.js'
import type { JsonValue } from '../core/json.js'
import {
  AUDIT_COLLECTION,
  MEMBERS_COLLECTION,
  REVOKED_COLLECTION,
  SELF_REVOKED_KEY,
  toAuditEntry,
  toMember,
  toRevocation,
  toSelfRevocation,
  type AuditEntry,
  type AuditType,
  type Member,
  type Revocation,
} from '../core/membership.js'
import type { AuditEntryView, DeviceRecord, SelfRevocation, WorkspaceEvents } from '../core/workspace-types.js'
import type { DocStore } from '../store/doc-store.js'
import type { WorkspaceKeys } from '../store/key-file.js'
import { LOCAL_ORIGIN, type CollectionRegistry } from './collection-registry.js'

export interface DeviceTrustOptions {
  /** This device. */
  deviceId: string
  /** Loads `_members`, `_revoked` and `_audit`. */
  registry: Pick<CollectionRegistry, 'load'>
  /** The local (never synced) part of the store: sticky revocations and this device's own revocation. */
  store: Pick<DocStore, 'getLocal' | 'putLocal'>
  /** The workspace keys of this device (with a home folder): rotated when a device is revoked. */
  keys: WorkspaceKeys | undefined
  /** Where device events go (the workspace's subscribers). */
  events: { emit<K extends keyof WorkspaceEvents>(event: K, payload: WorkspaceEvents[K]): void }
  /** Whether the workspace is closed (a removed revocation is then not written back). */
  closed(): boolean
}

/**
 * Who belongs to the workspace: the members (`_members`), the revocations (`_revoked`, sticky:
 * a revocation cannot be undone), this device's own revocation, and the synced audit log.
 */
export class DeviceTrust {
  private readonly deviceId: string
  private readonly registry: DeviceTrustOptions['registry']
  private readonly store: DeviceTrustOptions['store']
  private readonly keys: WorkspaceKeys | undefined
  private readonly events: DeviceTrustOptions['events']
  private readonly closed: () => boolean
  private readonly stickyRevoked = new Set<string>()
  private selfRevokedMarked = false
  private revocationWatch: Promise<void> | undefined
  /** Members with role `untrusted` (kept in step with `_members`, for the synchronous `shares`). */
  private readonly untrusted = new Set<string>()

  constructor(options: DeviceTrustOptions) {
    this.deviceId = options.deviceId
    this.registry = options.registry
    this.store = options.store
    this.keys = options.keys
    this.events = options.events
    this.closed = options.closed
  }

  async members(): Promise<Record<string, Member>> {
    const out: Record<string, Member> = {}
    const entries = (await this.registry.load(MEMBERS_COLLECTION)).collection.entries()
    for (const [id, value] of Object.entries(entries)) {
      const m = toMember(value)
      if (m !== undefined) out[id] = m
    }
    return out
  }

  /** A member that may hold the workspace keys and content: not revoked, not `untrusted`. */
  async isTrusted(deviceId: string): Promise<boolean> {
    await this.watchRevocations()
    return (await this.isMember(deviceId)) && !this.untrusted.has(deviceId)
  }

  /** Whether a device is a member with role `untrusted` (known once the membership is loaded). */
  isUntrusted(deviceId: string): boolean {
    return this.untrusted.has(deviceId)
  }

  /** A member (trusted or untrusted): added to the workspace and never revoked. */
  async isMember(deviceId: string): Promise<boolean> {
    if (await this.isRevoked(deviceId)) return false
    return toMember((await this.registry.load(MEMBERS_COLLECTION)).collection.get(deviceId)) !== undefined
  }

  async isRevoked(deviceId: string): Promise<boolean> {
    await this.watchRevocations()
    return this.stickyRevoked.has(deviceId) || toRevocation((await this.registry.load(REVOKED_COLLECTION)).collection.get(deviceId)) !== undefined
  }

  async devices(): Promise<DeviceRecord[]> {
    const members = await this.members()
    const revoked = await this.revocations()
    const ids = new Set([...Object.keys(members), ...Object.keys(revoked)])
    return [...ids].sort().map((id) => {
      const m = members[id]
      const r = revoked[id]
      const d: DeviceRecord = {
        peerId: id,
        name: m?.name ?? '(unknown)',
        addedBy: m?.addedBy ?? '',
        addedAt: m?.addedAt ?? 0,
        state: r === undefined && !this.stickyRevoked.has(id) ? 'trusted' : 'revoked',
        role: m?.role ?? 'trusted',
        self: id === this.deviceId,
      }
      if (r !== undefined) {
        d.revokedBy = r.revokedBy
        d.revokedAt = r.revokedAt
      }
      return d
    })
  }

  /** Revoke a device for good. `device` is its id, a unique part of the id, or its name. */
  async revoke(device: string, reason?: string): Promise<DeviceRecord> {
    const all = await this.devices()
    const matches = all.filter((d) => d.peerId === device || d.name === device || (device.length >= 6 && d.peerId.includes(device)))
    if (matches.length === 0) throw new KitsyncError('UNKNOWN_DEVICE', `no device ${JSON.stringify(device)} in this workspace (see kitsync devices)`)
    if (matches.length > 1) throw new KitsyncError('INVALID_ARGUMENT', `${JSON.stringify(device)} matches ${matches.length} devices; give more of the id`)
    const target = matches[0] as DeviceRecord
    if (target.self) throw new KitsyncError('INVALID_ARGUMENT', 'a device cannot revoke itself; revoke it from another device')
    if (target.state === 'revoked') return target
    const by = this.deviceId
    const revocation: Revocation = { revokedBy: by, revokedAt: Date.now(), ...(reason === undefined ? {} : { reason }) }
    await this.rememberRevoked(target.peerId)
    const entry = await this.registry.load(REVOKED_COLLECTION)
    entry.collection.set(target.peerId, { ...revocation }, LOCAL_ORIGIN)
    await entry.lastWrite
    // A new key epoch: what is encrypted from now on is unreadable with anything the revoked
    // device held. The running peer hands it to trusted members (listening to this event).
    const epoch = this.keys === undefined ? undefined : await this.keys.rotate()
    this.events.emit('device:revoked', { peerId: target.peerId, name: target.name, by })
    await this.audit('device-revoked', `revoked ${target.name}${reason === undefined ? '' : `: ${reason}`}`, target.peerId)
    if (epoch !== undefined) await this.audit('key-rotated', `workspace key epoch ${epoch}, after revoking ${target.name}`)
    return { ...target, state: 'revoked', revokedBy: by, revokedAt: revocation.revokedAt }
  }

  async revocations(): Promise<Record<string, Revocation>> {
    await this.watchRevocations()
    const out: Record<string, Revocation> = {}
    for (const [id, value] of Object.entries((await this.registry.load(REVOKED_COLLECTION)).collection.entries())) {
      const r = toRevocation(value)
      if (r !== undefined) out[id] = r
    }
    return out
  }

  /** Append to the synced audit log. */
  async audit(type: AuditType, reason: string, peer?: string): Promise<void> {
    const entry: AuditEntry = { at: Date.now(), device: this.deviceId, type, reason, ...(peer === undefined ? {} : { peer }) }
    const key = `${entry.at.toString(36).padStart(9, '0')}-${entry.device.slice(-8)}-${Math.random().toString(36).slice(2, 8)}`
    const log = await this.registry.load(AUDIT_COLLECTION)
    log.collection.set(key, { ...entry }, LOCAL_ORIGIN)
    await log.lastWrite
  }

  async log(): Promise<AuditEntryView[]> {
    const entries = Object.values((await this.registry.load(AUDIT_COLLECTION)).collection.entries())
      .map((v) => toAuditEntry(v))
      .filter((e): e is AuditEntry => e !== undefined)
    return entries.sort((a, b) => a.at - b.at)
  }

  async addMember(deviceId: string, member: Member): Promise<void> {
    if (await this.isRevoked(deviceId)) {
      throw new KitsyncError('DEVICE_REVOKED', 'this device was revoked; it can come back only with a new identity (a new home folder) and a new pairing')
    }
    const entry = await this.registry.load(MEMBERS_COLLECTION)
    entry.collection.set(deviceId, { ...member }, LOCAL_ORIGIN)
    await entry.lastWrite
    if (deviceId !== this.deviceId) {
      this.events.emit('device:joined', { peerId: deviceId, name: member.name, by: member.addedBy })
      await this.audit('device-joined', `${member.name} joined`, deviceId)
    }
  }

  /** This device's own revocation, once it learned it (local store, never synced). */
  async selfRevocation(): Promise<SelfRevocation | undefined> {
    return toSelfRevocation((await this.store.getLocal(SELF_REVOKED_KEY)) as JsonValue | undefined)
  }

  /** Record, once and durably, that this device was revoked, and tell subscribers; false if it was known. */
  async markRevokedSelf(r: SelfRevocation): Promise<boolean> {
    if (this.selfRevokedMarked || (await this.selfRevocation()) !== undefined) return false
    this.selfRevokedMarked = true
    await this.store.putLocal(SELF_REVOKED_KEY, { ...r })
    await this.rememberRevoked(this.deviceId)
    this.events.emit('device:revoked-self', r)
    return true
  }

  /**
   * Keep revocations sticky: every id ever seen in `_revoked` is remembered in this device's
   * own store, and written back if it disappears from the synced set. Also turns membership
   * changes into device events.
   */
  private watchRevocations(): Promise<void> {
    this.revocationWatch ??= (async () => {
      const stored = await this.store.getLocal('revoked')
      if (Array.isArray(stored)) for (const id of stored) if (typeof id === 'string') this.stickyRevoked.add(id)
      const revoked = (await this.registry.load(REVOKED_COLLECTION)).collection
      const members = (await this.registry.load(MEMBERS_COLLECTION)).collection
      for (const id of revoked.keys()) if (!this.stickyRevoked.has(id)) await this.rememberRevoked(id)
      for (const [id, value] of Object.entries(members.entries())) if (toMember(value)?.role === 'untrusted') this.untrusted.add(id)
      revoked.onChange((changes) => {
        for (const c of changes) {
          const r = toRevocation(c.value)
          if (r !== undefined) {
            if (!this.stickyRevoked.has(c.key)) {
              void this.rememberRevoked(c.key)
              const name = toMember(members.get(c.key))?.name ?? c.key.slice(-8)
              this.events.emit('device:revoked', { peerId: c.key, name, by: r.revokedBy })
            }
          } else if (this.stickyRevoked.has(c.key) && !this.closed()) {
            // Someone removed a revocation: it stands all the same; put it back.
            revoked.set(c.key, { revokedBy: this.deviceId, revokedAt: Date.now(), reason: 'restored: a revocation cannot be undone' }, LOCAL_ORIGIN)
          }
        }
      })
      members.onChange((changes) => {
        for (const c of changes) {
          const m = toMember(c.value)
          if (m?.role === 'untrusted') this.untrusted.add(c.key)
          else if (m !== undefined) this.untrusted.delete(c.key)
          if (m !== undefined && c.origin !== LOCAL_ORIGIN && c.key !== this.deviceId)
            this.events.emit('device:joined', { peerId: c.key, name: m.name, by: m.addedBy })
        }
      })
    })()
    return this.revocationWatch
  }

  private async rememberRevoked(id: string): Promise<void> {
    if (this.stickyRevoked.has(id)) return
    this.stickyRevoked.add(id)
    await this.store.putLocal('revoked', [...this.stickyRevoked])
  }
}
