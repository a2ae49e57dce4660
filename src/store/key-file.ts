import { randomBytes } from 'node:crypto'
import { isJsonObject } from '../core/json.js'
import { KitsyncError } from '../core/errors.js'
import { readJsonFile, writeJsonFile } from './json-file.js'

/**
 * Workspace keys, by epoch, in a 0600 file of the home folder (`keys.json`). A new epoch
 * starts at every revocation and reaches trusted members only, so what is encrypted with it
 * (the VPS store) is unreadable with anything a revoked device held. Never synced as data.
 */
export interface KeyRing {
  current: number
  keys: Record<string, string>
}

export const KEY_BYTES = 32

export class WorkspaceKeys {
  /** Changes run one at a time: each starts from the ring the one before it wrote. */
  private changes: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly file: string,
    private ring: KeyRing | undefined,
  ) {}

  static async load(file: string): Promise<WorkspaceKeys> {
    const raw = await readJsonFile(file)
    if (raw === undefined) return new WorkspaceKeys(file, undefined)
    if (!isJsonObject(raw) || typeof raw.current !== 'number' || !isJsonObject(raw.keys)) {
      throw new KitsyncError('DATA_CORRUPTION', `${file} is damaged; it was left as it is`)
    }
    return new WorkspaceKeys(file, raw as unknown as KeyRing)
  }

  get epoch(): number {
    return this.ring?.current ?? 0
  }

  /** The keys of every epoch this device has (hex), for a new member or a member behind. */
  export(after = 0): Record<string, string> {
    const out: Record<string, string> = {}
    for (const [epoch, key] of Object.entries(this.ring?.keys ?? {})) if (Number(epoch) > after) out[epoch] = key
    return out
  }

  key(epoch = this.epoch): Uint8Array | undefined {
    const hex = this.ring?.keys[String(epoch)]
    return hex === undefined ? undefined : new Uint8Array(Buffer.from(hex, 'hex'))
  }

  /** Every key this device has, the current epoch first. */
  all(): Uint8Array[] {
    const epochs = Object.keys(this.ring?.keys ?? {})
      .map(Number)
      .sort((a, b) => b - a)
    return epochs.map((e) => this.key(e)).filter((k): k is Uint8Array => k !== undefined)
  }

  /** Create the first key if there is none (the founding device). */
  ensure(): Promise<void> {
    return this.serial(async () => {
      if (this.ring === undefined) await this.rotateNow()
    })
  }

  /** Start a new epoch with a fresh random key. */
  rotate(): Promise<number> {
    return this.serial(() => this.rotateNow())
  }

  private async rotateNow(): Promise<number> {
    const next = this.epoch + 1
    const ring: KeyRing = { current: next, keys: { ...(this.ring?.keys ?? {}), [String(next)]: randomBytes(KEY_BYTES).toString('hex') } }
    await writeJsonFile(this.file, ring)
    this.ring = ring
    return next
  }

  /** Take keys from a trusted member; returns true if this moved to a newer epoch. */
  merge(keys: Record<string, string>): Promise<boolean> {
    return this.serial(() => this.mergeNow(keys))
  }

  private async mergeNow(keys: Record<string, string>): Promise<boolean> {
    const merged: Record<string, string> = { ...(this.ring?.keys ?? {}) }
    let current = this.epoch
    for (const [epoch, key] of Object.entries(keys)) {
      const n = Number(epoch)
      if (!Number.isSafeInteger(n) || n < 1 || !/^[0-9a-f]{64}$/.test(key)) continue
      if (merged[epoch] === undefined) merged[epoch] = key
      if (n > current) current = n
    }
    if (current === this.epoch && Object.keys(merged).length === Object.keys(this.ring?.keys ?? {}).length) return false
    const moved = current > this.epoch
    const ring: KeyRing = { current, keys: merged }
    await writeJsonFile(this.file, ring)
    this.ring = ring
    return moved
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.changes.then(fn, fn)
    this.changes = run.catch(() => undefined) // the caller gets the error from `run`; the chain only keeps the order
    return run
  }
}
