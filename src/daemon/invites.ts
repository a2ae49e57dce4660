import { randomBytes } from 'node:crypto'
import { TypedEmitter } from '../core/emitter.js'
import { KitsyncError } from '../core/errors.js'
import { isJsonObject } from '../core/json.js'
import { DEFAULT_MAX_DEVICES, MEMBERS_COLLECTION } from '../core/membership.js'
import { encodeToken, TOKEN_FLAG_CONFIRM, TOKEN_FLAG_UNTRUSTED, TOKEN_SECRET_BYTES, tokenId } from '../protocol/pair-token.js'
import type { PairingAuthority, Welcome } from '../net/pairing.js'
import { readJsonFile, writeJsonFile } from '../store/json-file.js'
import type { LocalWorkspace } from './local-workspace.js'

export const DEFAULT_TOKEN_TTL_MS = 10 * 60 * 1000
/** Longest a token may be valid (`kitsync pair --ttl` at most 10080 minutes). */
export const MAX_TOKEN_TTL_MS = 7 * 24 * 60 * 60 * 1000
/** How far the clock may step back and a token made before still count as made in the past. */
const CLOCK_STEP_BACK_MS = 60_000

interface InviteRecord {
  secret: string
  createdAt: number
  expiresAt: number
  usedAt?: number
  usedBy?: string
  /** The inviter approves the joiner after comparing confirmation codes. */
  confirm?: boolean
  /** The joiner becomes an untrusted storage/relay member: no keys, system collections only. */
  untrusted?: boolean
}

export interface PendingJoin {
  tokenId: string
  peerId: string
  name: string
  code: string
}

/** How long a joiner waits for approval of a --confirm token. */
const APPROVAL_TIMEOUT_MS = 110_000

export interface Invite {
  token: string
  tokenId: string
  expiresAt: number
  addresses: string[]
}

/**
 * The pairing tokens this device issued. A token is marked used (and that is written to
 * disk) before the joiner is admitted, so a token works once, also across restarts.
 */
export class Invites
  extends TypedEmitter<{
    used: { tokenId: string; deviceId: string; name: string }
    refused: { deviceId: string; code: string; message: string }
    pending: PendingJoin
  }>
  implements PairingAuthority
{
  private readonly decisions = new Map<string, (accept: boolean) => void>()
  /** Changes to the tokens, the file and the membership run one at a time (see exclusive). */
  private chain: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly file: string,
    private readonly workspace: LocalWorkspace,
    private readonly self: string,
    private readonly records: Map<string, InviteRecord>,
    private readonly maxDevices: () => number | Promise<number>,
  ) {
    super()
  }

  static async load(
    file: string,
    workspace: LocalWorkspace,
    self: string,
    maxDevices: () => number | Promise<number> = () => DEFAULT_MAX_DEVICES,
  ): Promise<Invites> {
    const raw = await readJsonFile(file)
    const records = new Map<string, InviteRecord>()
    if (isJsonObject(raw) && isJsonObject(raw.invites)) {
      for (const [id, r] of Object.entries(raw.invites)) {
        if (isJsonObject(r) && typeof r.secret === 'string' && typeof r.expiresAt === 'number') records.set(id, r as unknown as InviteRecord)
      }
    }
    return new Invites(file, workspace, self, records, maxDevices)
  }

  async create(options: { addresses: string[]; ttlMs?: number; confirm?: boolean; untrusted?: boolean }): Promise<Invite> {
    const secret = randomBytes(TOKEN_SECRET_BYTES)
    const id = tokenId(secret)
    const now = Date.now()
    const ttlMs = options.ttlMs ?? DEFAULT_TOKEN_TTL_MS
    if (!(ttlMs > 0 && ttlMs <= MAX_TOKEN_TTL_MS))
      throw new KitsyncError('INVALID_ARGUMENT', `a token's lifetime must be more than 0 and at most ${MAX_TOKEN_TTL_MS / 60_000} minutes (7 days)`)
    const expiresAt = now + ttlMs
    await this.exclusive(async () => {
      this.records.set(id, {
        secret: secret.toString('hex'),
        createdAt: now,
        expiresAt,
        ...(options.confirm === true ? { confirm: true } : {}),
        ...(options.untrusted === true ? { untrusted: true } : {}),
      })
      try {
        await this.save()
      } catch (err) {
        this.records.delete(id)
        throw err
      }
    })
    const flags = (options.confirm === true ? TOKEN_FLAG_CONFIRM : 0) | (options.untrusted === true ? TOKEN_FLAG_UNTRUSTED : 0)
    const token = encodeToken({ workspaceId: this.workspace.workspaceId, inviter: this.self, addresses: options.addresses, secret, expiresAt, flags })
    return { token, tokenId: id, expiresAt: Math.ceil(expiresAt / 1000) * 1000, addresses: options.addresses }
  }

  workspaceId(): string {
    return this.workspace.workspaceId
  }

  secretFor(id: string): Uint8Array {
    const r = this.records.get(id)
    if (r === undefined) throw new KitsyncError('TOKEN_REFUSED', 'this device did not issue that token')
    if (r.usedAt !== undefined) throw new KitsyncError('TOKEN_USED', 'this token was already used; ask for a new one with kitsync pair')
    const now = Date.now()
    // Made while this device's clock was ahead (set back since): it would stay valid for as
    // long as the clock was off, or again when the clock gets there. It expires now, for good.
    if (r.createdAt > now + CLOCK_STEP_BACK_MS || r.expiresAt > now + MAX_TOKEN_TTL_MS) {
      r.expiresAt = now - 1000
      throw new KitsyncError('TOKEN_EXPIRED', "this token was made while this device's clock was ahead, so it is void; ask for a new one with kitsync pair")
    }
    if (now > Math.ceil(r.expiresAt / 1000) * 1000) throw new KitsyncError('TOKEN_EXPIRED', 'this token has expired; ask for a new one with kitsync pair')
    return new Uint8Array(Buffer.from(r.secret, 'hex'))
  }

  /** Answer a pending --confirm join (from `kitsync pair --confirm`). */
  approve(id: string, accept: boolean): boolean {
    const decide = this.decisions.get(id)
    if (decide === undefined) return false
    decide(accept)
    return true
  }

  async admit(id: string, joiner: { deviceId: string; name: string; code: string }): Promise<Welcome> {
    // Several devices may pair at the same moment (each with its own token): every check and
    // change of the tokens, invites.json and the membership runs in one exclusive section, so
    // a token is used once, the device limit holds and the file is written by one save at a time.
    const r = await this.exclusive(() => this.check(id, joiner.deviceId))
    if (r.confirm === true) {
      // The approval is awaited outside the exclusive section (other pairings go on meanwhile);
      // the token is held by this joiner until it is decided.
      if (this.decisions.has(id)) throw new KitsyncError('TOKEN_USED', 'another device is already waiting for approval with this token')
      const accepted = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), APPROVAL_TIMEOUT_MS)
        this.decisions.set(id, (accept) => {
          clearTimeout(timer)
          resolve(accept)
        })
        this.emit('pending', { tokenId: id, peerId: joiner.deviceId, name: joiner.name, code: joiner.code })
      })
      this.decisions.delete(id)
      if (!accepted) throw new KitsyncError('TOKEN_REFUSED', 'the inviting device did not approve this device')
    }
    const untrusted = await this.exclusive(async () => {
      const record = await this.check(id, joiner.deviceId) // still valid, and still room for it
      record.usedAt = Date.now()
      record.usedBy = joiner.deviceId
      try {
        await this.save()
      } catch (err) {
        delete record.usedAt
        delete record.usedBy
        throw err
      }
      const untrusted = record.untrusted === true
      await this.workspace.addMember(joiner.deviceId, {
        name: joiner.name,
        addedBy: this.self,
        addedAt: Date.now(),
        ...(untrusted ? { role: 'untrusted' as const } : {}),
      })
      return untrusted
    })
    this.emit('used', { tokenId: id, deviceId: joiner.deviceId, name: joiner.name })
    const info = await this.workspace.info()
    // An untrusted (storage/relay) member gets the membership, never a workspace key.
    const keys = untrusted ? {} : (this.workspace.keys?.export(0) ?? {})
    return { workspaceId: info.workspaceId, name: info.name, members: await this.workspace.encodeCollection(MEMBERS_COLLECTION), keys }
  }

  /** The token is valid, the joiner is not revoked, and the workspace has room for it. */
  private async check(id: string, deviceId: string): Promise<InviteRecord> {
    this.secretFor(id)
    if (await this.workspace.isRevoked(deviceId)) {
      throw new KitsyncError('DEVICE_REVOKED', 'this device was revoked; it can come back only with a new identity (a new home folder) and a new pairing')
    }
    const trusted = (await this.workspace.devices()).filter((d) => d.state === 'trusted' && d.peerId !== deviceId)
    const limit = await this.maxDevices()
    if (trusted.length >= limit) {
      throw new KitsyncError(
        'DEVICE_LIMIT_EXCEEDED',
        `the workspace already has ${trusted.length} devices, its limit is ${limit}; revoke one or raise the limit (kitsync devices limit N)`,
      )
    }
    return this.records.get(id) as InviteRecord
  }

  /** Run `fn` after every earlier exclusive section has settled. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn)
    this.chain = run.catch(() => undefined) // the caller gets the error from `run`; the chain only keeps the order
    return run
  }

  refused(reason: KitsyncError, joiner: string): void {
    this.emit('refused', { deviceId: joiner, code: reason.code, message: reason.message })
  }

  private async save(): Promise<void> {
    // Forget unused tokens a day after they expired; used ones are kept so they stay refused.
    const cutoff = Date.now() - 24 * 3600 * 1000
    for (const [id, r] of this.records) if (r.usedAt === undefined && r.expiresAt < cutoff) this.records.delete(id)
    await writeJsonFile(this.file, { invites: Object.fromEntries(this.records) })
  }
}
