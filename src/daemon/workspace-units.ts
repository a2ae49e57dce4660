import { createHash } from 'node:crypto'
import * as Y from 'yjs'
import { debugLog } from '../core/debug-log.js'
import { TypedEmitter } from '../core/emitter.js'
import { isKitsyncError, KitsyncError } from '../core/errors.js'
import { assertJsonValue, isJsonObject, type JsonValue } from '../core/json.js'
import { assertRecordKey } from '../core/names.js'
import type { UnitEvents, UnitId, UnitRecordWrite, UnitUpdate, Units } from '../core/unit-types.js'
import { deleteRecord, setField, setRecord } from '../core/write-rules.js'
import type { UnitDigest } from '../protocol/unit-frames.js'
import type { BatchOp } from '../store/doc-layout.js'
import type { DocStore } from '../store/doc-store.js'
import { storageFailure } from '../store/level-errors.js'
import { releaseMemory } from './memory-release.js'
import { UnitStore, type UnitWrite } from '../store/unit-store.js'
import type { UnitEngineLink, UnitSyncHost } from '../sync/unit-host.js'
import type { RecordCollection } from '../core/record-collection.js'
import { LOCAL_ORIGIN, type CollectionRegistry } from './collection-registry.js'
import type { CollectionSettingsBook } from './collection-settings.js'

const log = debugLog('daemon:units')

/** Origin of the transactions that apply a peer's update to an open unit document. */
export const UNIT_SYNC_ORIGIN = Symbol('kitsync:unit-sync')
/** Origin of the transaction that loads a unit's stored state into its document. */
export const UNIT_LOAD_ORIGIN = Symbol('kitsync:unit-load')

/** Collection names as the sync protocol takes them: kitsync's own (`_folder.NAME`) included. */
const COLLECTION = /^_?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/**
 * Unit writes and loads (local commits, peers' updates, documents loaded to bring files to disk)
 * after which a quiet moment of RELEASE_QUIET_MS
 * runs a full collection (releaseMemory): a folder's initial sync of 10,000 files left its peer
 * with 175 MB of V8 old space of which 61 MB was live, for the 8-20 s until V8's memory reducer
 * ran (scripts/experiments/folders/memory.mjs).
 */
const RELEASE_AFTER_WRITES = 1000
const RELEASE_QUIET_MS = 500
/**
 * And without a quiet moment, every this many (a peer receiving a folder's 10,000 units as they
 * are captured, then placing it): the updates' buffers, promoted past the young generation, were
 * freed only at the end, after the main malloc arena had grown to hold ~50 MB of them, which it
 * keeps. 10,000 files, one run each: B's arena 74-78 -> 45-51 MB, its RSS 318 -> 246 MB.
 */
export const RELEASE_EVERY_WRITES = 2000
const EMPTY_STATE_VECTOR = new Uint8Array([0])

/**
 * The units of a workspace's collections and its blobs (core/unit-types.ts): documents loaded
 * on demand from the store (store/unit-store.ts), local changes committed in one LevelDB batch
 * with the manifest records that name them, and the port the sync engine uses to exchange them
 * (sync/unit-host.ts).
 */
export class WorkspaceUnits implements Units, UnitSyncHost {
  private readonly units: UnitStore
  private readonly emitter = new TypedEmitter<UnitEvents>()
  /** Open documents (and ones being loaded), by collection and unit. */
  private readonly docs = new Map<string, Promise<Y.Doc>>()
  /** Digests of stored units (UNIT_SUMS), dropped whenever a unit's stored state changes. */
  private readonly digestCache = new Map<string, number>()
  /** Counts the writes of units; per unit, the count at its last write: a digest read before it is not kept. */
  private writes = 0
  private readonly writtenAt = new Map<string, number>()
  /** Digests of a collection being computed (see digests). */
  private readonly computing = new Map<string, { digests: Promise<UnitDigest[]>; writes: number }>()
  /** Per unit: the peer updates being applied, one at a time. */
  private readonly applying = new Map<string, Promise<unknown>>()
  /** Units closed while a peer's update was applied to them: closed once it is done (see close). */
  private readonly closing = new Set<string>()
  /** Unit writes since the last releaseMemory, and the timer of the next. */
  private sinceRelease = 0
  private releaseTimer: NodeJS.Timeout | undefined
  private engine: UnitEngineLink | undefined
  /** Told of each unit this device commits (the blind store uploads it; daemon/blind-wiring.ts). */
  private readonly committed = new Set<(collection: string, unit: string) => void>()

  constructor(
    private readonly store: DocStore,
    private readonly registry: Pick<CollectionRegistry, 'load'>,
    private readonly settings: Pick<CollectionSettingsBook, 'settingsOf'>,
    /** Blobs are exchanged with trusted members only. */
    private readonly trust: { isUntrusted(peerId: string): boolean },
    /** Throws when the workspace is closed. */
    private readonly assertOpen: () => void,
  ) {
    this.units = store.units
  }

  open(collection: string, unit: UnitId, make: () => Y.Doc): Promise<Y.Doc> {
    try {
      this.check(collection, unit)
    } catch (err) {
      return Promise.reject(err)
    }
    const id = idOf(collection, unit)
    this.closing.delete(id)
    let p = this.docs.get(id)
    if (p === undefined) {
      this.busy() // the folder engine loads each unit it brings to disk, after the writes
      p = this.load(collection, unit, make)
      this.docs.set(id, p)
      p.catch(() => {
        if (this.docs.get(id) === p) this.docs.delete(id)
      })
    }
    return p
  }

  openMany(collection: string, units: readonly UnitId[], make: () => Y.Doc): Map<UnitId, Promise<Y.Doc>> {
    const out = new Map<UnitId, Promise<Y.Doc>>()
    const todo: UnitId[] = []
    for (const unit of units) {
      const open = this.docs.get(idOf(collection, unit))
      if (open !== undefined) {
        this.closing.delete(idOf(collection, unit))
        out.set(unit, open)
      } else if (!todo.includes(unit)) todo.push(unit)
    }
    if (todo.length < 2) {
      for (const unit of todo) out.set(unit, this.open(collection, unit, make))
      return out
    }
    let read: Promise<Map<string, Uint8Array[]>>
    try {
      this.checkCollection(collection)
      for (const unit of todo) UnitStore.assertUnitId(unit)
      this.assertOpen()
      read = this.units.readMany(collection, todo)
    } catch (err) {
      read = Promise.reject(err)
    }
    read.catch(() => undefined) // each unit's promise carries the failure
    for (const unit of todo) {
      const id = idOf(collection, unit)
      this.closing.delete(id)
      this.busy()
      // Registered before the read, as open does: a peer's update that arrives meanwhile is applied to this document.
      const p = read.then((all) => this.build(collection, unit, all.get(unit) ?? [], make))
      this.docs.set(id, p)
      p.catch(() => {
        if (this.docs.get(id) === p) this.docs.delete(id)
      })
      out.set(unit, p)
    }
    return out
  }

  private async load(collection: string, unit: string, make: () => Y.Doc): Promise<Y.Doc> {
    return this.build(collection, unit, await this.units.read(collection, unit), make)
  }

  private build(collection: string, unit: string, updates: readonly Uint8Array[], make: () => Y.Doc): Y.Doc {
    const doc = make()
    try {
      doc.transact(() => {
        for (const update of updates) Y.applyUpdate(doc, update, UNIT_LOAD_ORIGIN)
      }, UNIT_LOAD_ORIGIN)
    } catch (err) {
      throw new KitsyncError('DATA_CORRUPTION', `collection ${collection}: unit ${unit} cannot be loaded; the stored data was left as it is`, {
        details: { collection },
        cause: err,
      })
    }
    return doc
  }

  /**
   * Let a unit's document go (its state is stored; the next open loads it). One in use by an
   * incoming write (applyRemote) stays open until that write is done: whoever opens the unit
   * meanwhile gets that document, the update in it, not a load that may miss it.
   */
  close(collection: string, unit: UnitId): void {
    const id = idOf(collection, unit)
    if (this.applying.has(id)) this.closing.add(id)
    else this.docs.delete(id)
  }

  /** Close now: the document holds updates the store does not. */
  private discard(collection: string, unit: string): void {
    this.closing.delete(idOf(collection, unit))
    this.docs.delete(idOf(collection, unit))
  }

  async commit(collection: string, updates: readonly UnitUpdate[], records: readonly UnitRecordWrite[] = []): Promise<void> {
    this.assertOpen()
    this.checkCollection(collection)
    const byUnit = new Map<string, Uint8Array[]>()
    for (const { unit, update } of updates) {
      UnitStore.assertUnitId(unit)
      if (!(update instanceof Uint8Array)) throw new KitsyncError('INVALID_ARGUMENT', `the update of unit ${unit} is not a Uint8Array`)
      const list = byUnit.get(unit)
      if (list === undefined) byUnit.set(unit, [update])
      else list.push(update)
    }
    for (const r of records) {
      assertRecordKey(r.key)
      if (r.fields !== null) assertJsonValue(r.fields)
    }
    const writes: UnitWrite[] = []
    const ops: BatchOp[] = []
    for (const [unit, list] of byUnit) {
      const w = await this.units.append(collection, unit, list)
      writes.push(w)
      for (const op of w.ops) ops.push(op)
    }
    try {
      if (records.length === 0) await this.store.batch(ops)
      else await this.commitWithRecords(collection, ops, records)
    } catch (err) {
      for (const w of writes) w.failed()
      // The documents hold updates the store does not: the next open loads what is stored.
      for (const unit of byUnit.keys()) this.discard(collection, unit)
      throw isKitsyncError(err) ? err : storageFailure(collection, 'cannot store its units', err)
    }
    for (const w of writes) w.written()
    for (const [unit, list] of byUnit) {
      this.changed(collection, unit)
      for (const update of list) this.engine?.forward(collection, unit, update)
      for (const listener of this.committed) listener(collection, unit)
    }
  }

  /**
   * The records go through the collection's own write path (its document, the rows derived
   * from it), and the units' ops ride in the batch of that transaction's update (see
   * CollectionLog.carried). A transaction that changed nothing leaves them to a batch of their own.
   */
  private async commitWithRecords(collection: string, ops: BatchOp[], records: readonly UnitRecordWrite[]): Promise<void> {
    const entry = await this.registry.load(collection)
    const rules = await this.settings.settingsOf(collection)
    const c = entry.collection
    entry.log.carried = ops
    let left: BatchOp[] | undefined
    try {
      c.doc.transact(() => {
        const now = Date.now()
        for (const { key, fields } of records) {
          if (fields === null) deleteRecord(c, rules, key, LOCAL_ORIGIN)
          else {
            // Field by field once the record exists: a rename (path) on one device and an edit
            // (hash, size) on another merge, where a whole write would undo the older one.
            const current = c.get(key)
            if (!isJsonObject(current)) setRecord(c, rules, key, fields as JsonValue, LOCAL_ORIGIN, now)
            else for (const [field, value] of Object.entries(fields)) setField(c, rules, key, field, value, LOCAL_ORIGIN, now)
          }
        }
      }, LOCAL_ORIGIN)
    } finally {
      // Still there: the transaction changed nothing, so no append took them.
      left = entry.log.carried
      entry.log.carried = undefined
    }
    if (left !== undefined) await this.store.batch(left)
    else await entry.lastWrite
  }

  /** The records of a units collection as loaded (the folder layer reads its manifest here: the workspace's reads refuse `_` names). */
  async recordsOf(collection: string): Promise<RecordCollection> {
    this.checkCollection(collection)
    return (await this.registry.load(collection)).collection
  }

  list(collection: string): Promise<UnitId[]> {
    try {
      this.checkCollection(collection)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.units.list(collection)
  }

  async drop(collection: string, unit: UnitId): Promise<void> {
    this.check(collection, unit)
    this.discard(collection, unit)
    await this.units.drop(collection, unit)
    this.digestCache.delete(idOf(collection, unit))
    this.writtenAt.set(idOf(collection, unit), ++this.writes)
  }

  async putBlob(hash: string, bytes: Uint8Array): Promise<void> {
    this.assertOpen()
    await this.units.putBlob(hash, bytes)
  }

  async getBlob(hash: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    this.assertOpen()
    const local = await this.units.getBlob(hash)
    if (local !== undefined) return local
    return this.engine?.fetchBlob(hash, options.signal)
  }

  on<K extends keyof UnitEvents>(event: K, listener: (payload: UnitEvents[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }

  /** Each unit this device commits, once durable. */
  onCommit(listener: (collection: string, unit: string) => void): () => void {
    this.committed.add(listener)
    return () => this.committed.delete(listener)
  }

  /** An update that came from elsewhere than a peer (the blind store) and was stored by applyRemote: on to the connected peers. */
  relay(collection: string, unit: string, update: Uint8Array): void {
    this.engine?.forward(collection, unit, update)
  }

  /** A unit's stored state as one update, with its digest (what the blind store compares; undefined: nothing stored). */
  async stored(collection: string, unit: string): Promise<{ update: Uint8Array; digest: number } | undefined> {
    this.check(collection, unit)
    const merged = await this.units.merged(collection, unit)
    return merged === undefined ? undefined : { update: merged, digest: digestOf(unit, merged) }
  }

  /** The workspace closes: documents are let go (their stored state stays). */
  closeAll(): void {
    this.docs.clear()
    this.closing.clear()
    clearTimeout(this.releaseTimer)
    this.engine = undefined
  }

  // UnitSyncHost: what the sync engine asks.

  connect(engine: UnitEngineLink): void {
    this.engine = engine
  }

  digests(collection: string): Promise<UnitDigest[]> {
    // Sessions that start together (a restart, several devices) share one computation, unless a
    // unit was written since it began: a session not ready then missed that write's live update.
    const running = this.computing.get(collection)
    if (running !== undefined && running.writes === this.writes) return running.digests
    const digests = this.computeDigests(collection)
    const entry = { digests, writes: this.writes }
    this.computing.set(collection, entry)
    const done = (): void => {
      if (this.computing.get(collection) === entry) this.computing.delete(collection)
    }
    digests.then(done, done)
    return digests
  }

  private async computeDigests(collection: string): Promise<UnitDigest[]> {
    const units = await this.units.list(collection)
    const missing = units.filter((unit) => !this.digestCache.has(idOf(collection, unit))).length
    const scanned = new Map<string, number>()
    if (missing > 64) {
      // Most are not known (the first catch-up after a start): one scan of the collection's units.
      const readFrom = this.writes
      for await (const { unit, state } of this.units.mergedAll(collection))
        scanned.set(unit, this.keepDigest(collection, unit, readFrom, digestOf(unit, state)))
    }
    const out: UnitDigest[] = []
    for (const unit of units) {
      let digest = this.digestCache.get(idOf(collection, unit)) ?? scanned.get(unit)
      if (digest === undefined) {
        const readFrom = this.writes
        digest = this.keepDigest(collection, unit, readFrom, digestOf(unit, await this.units.merged(collection, unit)))
      }
      out.push({ unit, digest })
    }
    return out
  }

  /** Cache a digest read from the store once `readFrom` writes were done, unless the unit was written since. */
  private keepDigest(collection: string, unit: string, readFrom: number, digest: number): number {
    const id = idOf(collection, unit)
    if ((this.writtenAt.get(id) ?? -1) <= readFrom) this.digestCache.set(id, digest)
    return digest
  }

  async stateVector(collection: string, unit: string): Promise<Uint8Array> {
    const merged = await this.units.merged(collection, unit)
    return merged === undefined ? EMPTY_STATE_VECTOR : Y.encodeStateVectorFromUpdate(merged)
  }

  async diff(collection: string, unit: string, vector: Uint8Array): Promise<Uint8Array | undefined> {
    const merged = await this.units.merged(collection, unit)
    if (merged === undefined) return undefined
    try {
      return Y.diffUpdate(merged, vector)
    } catch (err) {
      throw new KitsyncError('PROTOCOL_ERROR', `malformed state vector for unit ${unit} of ${collection}`, { cause: err })
    }
  }

  applyRemote(collection: string, unit: string, update: Uint8Array, from: string): Promise<boolean> {
    const id = idOf(collection, unit)
    const run = (this.applying.get(id) ?? Promise.resolve()).then(() => this.applyNow(collection, unit, update, from))
    const tail = run.catch(() => undefined) // the caller gets the failure; the next update waits only for its turn
    this.applying.set(id, tail)
    void tail.then(() => {
      if (this.applying.get(id) !== tail) return
      this.applying.delete(id)
      if (this.closing.delete(id)) this.docs.delete(id)
    })
    return run
  }

  private async applyNow(collection: string, unit: string, update: Uint8Array, from: string): Promise<boolean> {
    this.assertOpen()
    const open = this.docs.get(idOf(collection, unit))
    // Not open: a scratch copy of the stored state tells whether the update holds anything new.
    const doc = open !== undefined ? await open : await this.load(collection, unit, () => new Y.Doc({ gc: false }))
    let changed = false
    const onUpdate = (): void => void (changed = true)
    doc.on('update', onUpdate)
    try {
      Y.applyUpdate(doc, update, UNIT_SYNC_ORIGIN)
    } catch (err) {
      throw new KitsyncError('PROTOCOL_ERROR', `malformed update for unit ${unit} of ${collection}`, { cause: err })
    } finally {
      doc.off('update', onUpdate)
    }
    if (!changed) return false
    const w = await this.units.append(collection, unit, [update])
    try {
      await this.store.batch(w.ops)
    } catch (err) {
      w.failed()
      // An open document holds it now, the store does not: the next open loads what is stored.
      if (open !== undefined) this.discard(collection, unit)
      throw storageFailure(collection, `cannot store an update of unit ${unit}`, err)
    }
    w.written()
    this.changed(collection, unit)
    // Opened meanwhile: its load may have read the store before this update was in it.
    const opened = this.docs.get(idOf(collection, unit))
    if (opened !== undefined && opened !== open) Y.applyUpdate(await opened, update, UNIT_SYNC_ORIGIN)
    this.emitter.emit('unit:update', { collection, unit, update, from })
    return true
  }

  localBlob(hash: string): Promise<Uint8Array | undefined> {
    return this.units.getBlob(hash)
  }

  async storeBlob(hash: string, bytes: Uint8Array): Promise<void> {
    await this.units.putBlob(hash, bytes)
    this.emitter.emit('blob:stored', { hash, size: bytes.byteLength })
  }

  exchangesBlobs(peerId: string): boolean {
    return !this.trust.isUntrusted(peerId)
  }

  /** A unit's stored state changed: its digest is computed again when asked, and a long log is folded. */
  private changed(collection: string, unit: string): void {
    this.digestCache.delete(idOf(collection, unit))
    this.writtenAt.set(idOf(collection, unit), ++this.writes)
    this.busy()
    void this.units
      .compactionDue(collection, unit)
      .then((due) => (due ? this.units.compact(collection, unit) : undefined))
      .catch((err: unknown) => log(`collection ${collection}: compaction of unit ${unit} failed; its log stays`, err))
  }

  /** A unit written or loaded: past RELEASE_AFTER_WRITES, releaseMemory once they stop for RELEASE_QUIET_MS, or at RELEASE_EVERY_WRITES. */
  private busy(): void {
    if (++this.sinceRelease < RELEASE_AFTER_WRITES) return
    clearTimeout(this.releaseTimer)
    if (this.sinceRelease >= RELEASE_EVERY_WRITES) {
      this.sinceRelease = 0
      setImmediate(releaseMemory) // after the write's own work, not inside it
      return
    }
    this.releaseTimer = setTimeout(() => {
      this.sinceRelease = 0
      releaseMemory()
    }, RELEASE_QUIET_MS)
    this.releaseTimer.unref()
  }

  private check(collection: string, unit: string): void {
    this.assertOpen()
    this.checkCollection(collection)
    UnitStore.assertUnitId(unit)
  }

  private checkCollection(collection: string): void {
    if (typeof collection !== 'string' || !COLLECTION.test(collection))
      throw new KitsyncError('INVALID_NAME', `invalid collection name ${JSON.stringify(collection)}`)
  }
}

const idOf = (collection: string, unit: string): string => `${collection}\0${unit}`

/**
 * A unit's digest: the first 32 bits of SHA-256 over its id and its stored state's state vector
 * and delete set (the update less its structs, Y.diffUpdate against its own state vector), so two
 * devices with the same updates agree whatever order and grouping they got them in. Read from
 * the update: 0.1 ms for a unit of 10 KB, where a Y.Doc load and Y.snapshot took 0.4 ms
 * (scripts/experiments/units-digest.mjs).
 */
function digestOf(unit: string, merged: Uint8Array | undefined): number {
  const state = merged ?? new Uint8Array([0, 0])
  const vector = Y.encodeStateVectorFromUpdate(state)
  const hash = createHash('sha256').update(unit).update('\0').update(vector).update(Y.diffUpdate(state, vector)).digest()
  return hash.readUInt32BE(0)
}
