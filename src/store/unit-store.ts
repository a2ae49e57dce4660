import { createHash } from 'node:crypto'
import * as Y from 'yjs'
import { KitsyncError } from '../core/errors.js'
import type { BatchOp } from './doc-layout.js'
import { frame, unframe } from './framing.js'
import { corruption, damageOr, readFailure, storageFailure } from './level-errors.js'
import type { LogStore } from './log-store.js'
import { BLOB_GRACE_MS } from './blob-gc.js'
import {
  BLOB_HASH,
  blobKey,
  UNIT_ID,
  unitLogRange,
  unitOfLogKey,
  unitOfSnapshotKey,
  unitSeqOf,
  unitSnapshotKey,
  unitSnapshotRange,
  unitUpdateKey,
  unitUpdateRange,
} from './unit-layout.js'

/** A unit's log is folded into its snapshot once it holds this many entries. */
export const UNIT_COMPACT_ENTRIES = 32
/** Units read at once by mergedAll. */
const MERGED_SLICE = 256
/** The empty Yjs update: the snapshot a unit is created with. */
const EMPTY_UPDATE = new Uint8Array([0, 0])

/** What is known of one unit's stored log (read once, then kept up to date by the writes). */
interface UnitState {
  /** Its snapshot key is stored (or in a batch being written). */
  exists: boolean
  lastSeq: number
  entries: number
}

/** The writes of one commit to one unit, for the caller's batch. */
export interface UnitWrite {
  ops: BatchOp[]
  /** Call once the batch is written: the in-memory state follows. */
  written(): void
  /** Call when the batch failed: a unit it created is not there. */
  failed(): void
}

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/**
 * The stored units of every collection and the blobs, in the workspace's LevelDB (keys:
 * unit-layout.ts). A unit is a snapshot and a log of updates after it, like a collection
 * (collection-log.ts), but small and many: its writes are ops handed to the caller, who puts
 * them in one batch with the manifest records that go with them (see daemon/workspace-units.ts),
 * and it is compacted by merging the stored updates (no document needed).
 */
export class UnitStore {
  private readonly states = new Map<string, Promise<UnitState>>()
  /** Compactions and drops of a unit run one at a time (keyed like states). */
  private readonly locks = new Map<string, Promise<void>>()
  /** When each blob was last stored by this process (see recentlyPut), pruned past BLOB_GRACE_MS. */
  private readonly puts = new Map<string, number>()
  private putsInFlight = 0
  private readonly putsIdle: (() => void)[] = []
  /** A dropBlobs under way: blob puts wait for it. */
  private dropping: Promise<void> | undefined

  constructor(private readonly store: Pick<LogStore, 'db' | 'batch'>) {}

  /** Throws INVALID_NAME unless `unit` is a unit id. */
  static assertUnitId(unit: string): void {
    if (typeof unit !== 'string' || !UNIT_ID.test(unit))
      throw new KitsyncError('INVALID_NAME', `invalid unit id ${JSON.stringify(unit)}: use 1-64 base64url characters`)
  }

  /** The stored updates of a unit, the snapshot first (empty when nothing is stored). */
  async read(name: string, unit: string): Promise<Uint8Array[]> {
    // The log before the snapshot: a compaction between the two reads then leaves its entries in
    // both (harmless to Yjs), never in neither.
    const log: Uint8Array[] = []
    let lastSeq = -1
    let entries = 0
    try {
      for await (const [k, value] of this.store.db.iterator(unitUpdateRange(name, unit))) {
        const payload = unframe(value)
        if (payload === undefined) throw corruption(name, `damaged update of unit ${unit}`)
        log.push(payload)
        lastSeq = unitSeqOf(name, unit, k)
        entries++
      }
    } catch (err) {
      throw damageOr(name, err)
    }
    let snapRaw: Uint8Array | undefined
    try {
      snapRaw = await this.store.db.get(unitSnapshotKey(name, unit))
    } catch (err) {
      throw readFailure(name, err)
    }
    const updates: Uint8Array[] = []
    if (snapRaw !== undefined) {
      const payload = unframe(snapRaw)
      if (payload === undefined) throw corruption(name, `damaged snapshot of unit ${unit}`)
      updates.push(payload)
    }
    for (const u of log) updates.push(u)
    // What was just read is the state, unless a write reserved seqs meanwhile.
    const id = stateId(name, unit)
    if (!this.states.has(id)) this.states.set(id, Promise.resolve({ exists: snapRaw !== undefined, lastSeq, entries }))
    return updates
  }

  /**
   * `read` for several units of one collection in two range scans, from the first of them to the
   * last in key order (the logs, then the snapshots, as `read`), instead of an iterator and a get
   * per unit: for a batch of files brought to disk together. Units between them that were not
   * asked for are read and skipped, so callers ask for units that fill most of their span.
   */
  async readMany(name: string, units: readonly string[]): Promise<Map<string, Uint8Array[]>> {
    const wanted = new Set(units)
    const sorted = [...wanted].sort()
    const out = new Map<string, Uint8Array[]>()
    if (sorted.length === 0) return out
    const first = sorted[0] as string
    const last = sorted[sorted.length - 1] as string
    const logs = new Map<string, { updates: Uint8Array[]; lastSeq: number }>()
    try {
      for await (const [key, value] of this.store.db.iterator({ gte: `${unitLogRange(name).gte}${first}!`, lt: `${unitLogRange(name).gte}${last}"` })) {
        const unit = unitOfLogKey(name, key)
        if (!wanted.has(unit)) continue
        const payload = unframe(value)
        if (payload === undefined) throw corruption(name, `damaged update of unit ${unit}`)
        const log = logs.get(unit)
        if (log === undefined) logs.set(unit, { updates: [payload], lastSeq: unitSeqOf(name, unit, key) })
        else {
          log.updates.push(payload)
          log.lastSeq = unitSeqOf(name, unit, key)
        }
      }
      const snapshots = new Map<string, Uint8Array>()
      for await (const [key, value] of this.store.db.iterator({
        gte: `${unitSnapshotRange(name).gte}${first}`,
        lte: `${unitSnapshotRange(name).gte}${last}`,
      })) {
        const unit = unitOfSnapshotKey(name, key)
        if (!wanted.has(unit)) continue
        const payload = unframe(value)
        if (payload === undefined) throw corruption(name, `damaged snapshot of unit ${unit}`)
        snapshots.set(unit, payload)
      }
      for (const unit of sorted) {
        const snap = snapshots.get(unit)
        const log = logs.get(unit)
        out.set(unit, [...(snap === undefined ? [] : [snap]), ...(log?.updates ?? [])])
        const id = stateId(name, unit)
        if (!this.states.has(id))
          this.states.set(id, Promise.resolve({ exists: snap !== undefined, lastSeq: log?.lastSeq ?? -1, entries: log?.updates.length ?? 0 }))
      }
    } catch (err) {
      throw damageOr(name, err)
    }
    return out
  }

  /** The stored state of a unit as one update (merged), or undefined when nothing is stored. */
  async merged(name: string, unit: string): Promise<Uint8Array | undefined> {
    const updates = await this.read(name, unit)
    if (updates.length === 0) return undefined
    return updates.length === 1 ? updates[0] : Y.mergeUpdates(updates)
  }

  /**
   * The stored state of every unit of a collection, each merged into one update, in two range
   * scans per slice of `slice` units (the snapshots, then the logs): for the digests of a whole
   * collection, where a read per unit cost 10,000 gets and 10,000 iterators. In slices, so that
   * only a slice's updates are held at once: the whole collection at once held a folder of
   * 10,000 files (55 MB) in memory at each sync session's start.
   */
  async *mergedAll(name: string, slice = MERGED_SLICE): AsyncGenerator<{ unit: string; state: Uint8Array }> {
    const units = await this.list(name)
    for (let i = 0; i < units.length; i += slice) {
      const first = units[i] as string
      const last = units[Math.min(i + slice, units.length) - 1] as string
      yield* this.mergedSlice(name, first, last)
    }
  }

  /** mergedAll for the units from `first` to `last` (key order: '!' sorts before every unit id character). */
  private async *mergedSlice(name: string, first: string, last: string): AsyncGenerator<{ unit: string; state: Uint8Array }> {
    // The logs before the snapshots, as in read.
    const logs = new Map<string, Uint8Array[]>()
    const states = new Map<string, Uint8Array[]>()
    try {
      for await (const [key, value] of this.store.db.iterator({ gte: `${unitLogRange(name).gte}${first}!`, lt: `${unitLogRange(name).gte}${last}"` })) {
        const unit = unitOfLogKey(name, key)
        const payload = unframe(value)
        if (payload === undefined) throw corruption(name, `damaged update of unit ${unit}`)
        const log = logs.get(unit)
        if (log === undefined) logs.set(unit, [payload])
        else log.push(payload)
      }
      for await (const [key, value] of this.store.db.iterator({
        gte: `${unitSnapshotRange(name).gte}${first}`,
        lte: `${unitSnapshotRange(name).gte}${last}`,
      })) {
        const unit = unitOfSnapshotKey(name, key)
        const payload = unframe(value)
        if (payload === undefined) throw corruption(name, `damaged snapshot of unit ${unit}`)
        // A log without its snapshot is a unit dropped while this scan ran: not listed.
        states.set(unit, [payload, ...(logs.get(unit) ?? [])])
      }
    } catch (err) {
      throw damageOr(name, err)
    }
    for (const [unit, updates] of states) yield { unit, state: updates.length === 1 ? (updates[0] as Uint8Array) : Y.mergeUpdates(updates) }
  }

  /** Ops that append `updates` to a unit's log (and create it), for one batch with others. */
  async append(name: string, unit: string, updates: readonly Uint8Array[]): Promise<UnitWrite> {
    const state = await this.state(name, unit)
    const ops: BatchOp[] = []
    const creates = !state.exists
    if (creates) ops.push({ type: 'put', key: unitSnapshotKey(name, unit), value: frame(EMPTY_UPDATE) })
    // Seqs are taken now (a failed batch leaves a gap, which no reader minds: logs are read by range).
    for (const update of updates) ops.push({ type: 'put', key: unitUpdateKey(name, unit, ++state.lastSeq), value: frame(update) })
    // Marked now, so a concurrent write does not put an empty snapshot again (over a compaction's).
    state.exists = true
    return {
      ops,
      written: () => {
        state.entries += updates.length
      },
      failed: () => {
        if (creates) state.exists = false
      },
    }
  }

  /** Whether a unit's log is long enough to be folded into its snapshot. */
  async compactionDue(name: string, unit: string): Promise<boolean> {
    return (await this.state(name, unit)).entries >= UNIT_COMPACT_ENTRIES
  }

  /** Fold a unit's log into its snapshot: the merged updates replace the snapshot and the entries read, in one batch. */
  compact(name: string, unit: string): Promise<void> {
    return this.locked(name, unit, async () => {
      const state = await this.state(name, unit)
      if (!state.exists) return
      const keys: string[] = []
      const updates: Uint8Array[] = []
      const snapRaw = await this.store.db.get(unitSnapshotKey(name, unit))
      if (snapRaw === undefined) return // dropped meanwhile
      const snap = unframe(snapRaw)
      if (snap === undefined) throw corruption(name, `damaged snapshot of unit ${unit}`)
      updates.push(snap)
      for await (const [k, value] of this.store.db.iterator(unitUpdateRange(name, unit))) {
        const payload = unframe(value)
        if (payload === undefined) throw corruption(name, `damaged update of unit ${unit}`)
        updates.push(payload)
        keys.push(k)
      }
      if (keys.length === 0) return
      const ops: BatchOp[] = [{ type: 'put', key: unitSnapshotKey(name, unit), value: frame(Y.mergeUpdates(updates)) }]
      for (const key of keys) ops.push({ type: 'del', key })
      await this.store.batch(ops)
      state.entries = Math.max(0, state.entries - keys.length)
    })
  }

  /** Ids of the units of a collection that have stored state. */
  async list(name: string): Promise<string[]> {
    const units: string[] = []
    try {
      for await (const key of this.store.db.keys(unitSnapshotRange(name))) units.push(unitOfSnapshotKey(name, key))
    } catch (err) {
      throw readFailure(name, err)
    }
    return units
  }

  /** Delete a unit's stored state. */
  drop(name: string, unit: string): Promise<void> {
    return this.locked(name, unit, async () => {
      const ops: BatchOp[] = [{ type: 'del', key: unitSnapshotKey(name, unit) }]
      try {
        for await (const key of this.store.db.keys(unitUpdateRange(name, unit))) ops.push({ type: 'del', key })
        await this.store.batch(ops)
      } catch (err) {
        throw damageOr(name, err)
      }
      this.states.delete(stateId(name, unit))
    })
  }

  /** Ops that delete every unit of a collection (with the collection itself, see DocStore.drop). */
  async dropAllOps(name: string): Promise<BatchOp[]> {
    const ops: BatchOp[] = []
    for (const range of [unitSnapshotRange(name), unitLogRange(name)]) for await (const key of this.store.db.keys(range)) ops.push({ type: 'del', key })
    for (const id of [...this.states.keys()]) if (id.startsWith(`${name}\0`)) this.states.delete(id)
    return ops
  }

  /** Store a blob under its SHA-256 (lowercase hex); DATA_CORRUPTION when the bytes do not have that hash. */
  async putBlob(hash: string, bytes: Uint8Array): Promise<void> {
    assertBlobHash(hash)
    if (sha256Hex(bytes) !== hash) throw new KitsyncError('DATA_CORRUPTION', `blob ${hash}: its bytes have another SHA-256; it was not stored`)
    try {
      while (this.dropping !== undefined) await this.dropping
      this.notePut(hash)
      this.putsInFlight++
      try {
        await this.store.batch([{ type: 'put', key: blobKey(hash), value: frame(bytes) }])
      } finally {
        if (--this.putsInFlight === 0) for (const wake of this.putsIdle.splice(0)) wake()
      }
    } catch (err) {
      throw storageFailure(`blob ${hash}`, 'cannot store it', err)
    }
  }

  /**
   * Whether this process stored the blob in the last BLOB_GRACE_MS (at or before the put's
   * batch): its record may not be written yet, so blob collection (store/blob-gc.ts) keeps it.
   */
  recentlyPut(hash: string, now: number = Date.now()): boolean {
    const at = this.puts.get(hash)
    return at !== undefined && now - at < BLOB_GRACE_MS
  }

  /**
   * Delete blobs (blob collection, store/blob-gc.ts), leaving those stored in the last
   * BLOB_GRACE_MS. Excludes blob puts meanwhile: it waits for the puts in flight, picks what to
   * delete, and puts that start meanwhile wait for the delete, so a blob stored again is never
   * deleted after its put. Returns the blobs deleted.
   */
  async dropBlobs(hashes: readonly string[]): Promise<string[]> {
    while (this.dropping !== undefined) await this.dropping
    let dropped: string[] = []
    const run = (async () => {
      if (this.putsInFlight > 0) await new Promise<void>((resolve) => this.putsIdle.push(resolve))
      dropped = hashes.filter((h) => !this.recentlyPut(h))
      if (dropped.length > 0) await this.store.batch(dropped.map((h) => ({ type: 'del', key: blobKey(h) })))
    })()
    this.dropping = run.then(
      () => undefined,
      () => undefined,
    )
    try {
      await run
    } catch (err) {
      throw storageFailure('blobs', 'cannot delete unused blobs', err)
    } finally {
      this.dropping = undefined
    }
    return dropped
  }

  private notePut(hash: string): void {
    const now = Date.now()
    this.puts.delete(hash)
    this.puts.set(hash, now)
    // Oldest first (re-set on each put): drop what is past the grace.
    for (const [h, at] of this.puts) {
      if (now - at < BLOB_GRACE_MS) break
      this.puts.delete(h)
    }
  }

  /** A stored blob, checked against its hash; undefined when it is not stored. */
  async getBlob(hash: string): Promise<Uint8Array | undefined> {
    assertBlobHash(hash)
    let raw: Uint8Array | undefined
    try {
      raw = await this.store.db.get(blobKey(hash))
    } catch (err) {
      throw readFailure(`blob ${hash}`, err)
    }
    if (raw === undefined) return undefined
    const bytes = unframe(raw)
    if (bytes === undefined || sha256Hex(bytes) !== hash)
      throw new KitsyncError('DATA_CORRUPTION', `blob ${hash} is damaged in the store; it was left as it is`)
    return bytes
  }

  private state(name: string, unit: string): Promise<UnitState> {
    const id = stateId(name, unit)
    let p = this.states.get(id)
    if (p === undefined) {
      p = this.readState(name, unit)
      this.states.set(id, p)
      p.catch(() => this.states.delete(id))
    }
    return p
  }

  private async readState(name: string, unit: string): Promise<UnitState> {
    try {
      const exists = (await this.store.db.get(unitSnapshotKey(name, unit))) !== undefined
      let lastSeq = -1
      for await (const key of this.store.db.keys({ ...unitUpdateRange(name, unit), reverse: true, limit: 1 })) lastSeq = unitSeqOf(name, unit, key)
      let entries = 0
      if (lastSeq >= 0) for await (const _ of this.store.db.keys(unitUpdateRange(name, unit))) entries++
      return { exists, lastSeq, entries }
    } catch (err) {
      throw readFailure(name, err)
    }
  }

  private locked(name: string, unit: string, work: () => Promise<void>): Promise<void> {
    const id = stateId(name, unit)
    const run = (this.locks.get(id) ?? Promise.resolve()).then(work)
    const tail = run.catch(() => undefined) // the caller gets the failure; the next waits only for the turn
    this.locks.set(id, tail)
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id)
    })
    return run
  }
}

const stateId = (name: string, unit: string): string => `${name}\0${unit}`

export function assertBlobHash(hash: string): void {
  if (typeof hash !== 'string' || !BLOB_HASH.test(hash))
    throw new KitsyncError('INVALID_ARGUMENT', `invalid blob hash ${JSON.stringify(hash)}: use a SHA-256 in lowercase hex`)
}
