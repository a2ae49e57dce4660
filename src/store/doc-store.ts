import { readdir, stat, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_COMPACTION, type CompactionPolicy } from '../core/compaction-policy.js'
import { KitsyncError } from '../core/errors.js'
import { isInternalCollection } from '../core/membership.js'
import { CollectionLog } from './collection-log.js'
import type { LogStore } from './log-store.js'
import {
  checkpointKey,
  checkpointOf,
  derivedRange,
  fileRefOf,
  jsonValue,
  localKey,
  META_RANGE,
  metaKey,
  newMeta,
  parseJson,
  seqOf,
  snapshotKey,
  storedFile,
  updateKey,
  updatePrefix,
  updateRange,
  vectorKey,
  type BatchOp,
  type Checkpoint,
  type CollectionMeta,
  type StoredSnapshot,
} from './doc-layout.js'
import { FILE_REF_FORMAT, frame, unframe } from './framing.js'
import { corruption, damageOr, isLevelCorruption, isLevelIoError, levelDamage, readFailure, storageFailure } from './level-errors.js'
import type { BinaryLevel } from './level.js'
import type { SnapshotFiles, SnapshotFileWrite } from './snapshot-files.js'
import type { WalEntry, WriteAheadFile } from './wal.js'
import { UnitStore } from './unit-store.js'

export interface LoadedLog {
  /** The snapshot (if any) followed by the logged updates the derived rows reflect (all of them without a checkpoint), in write order. */
  updates: Uint8Array[]
  /** The logged updates after the checkpoint, in write order: their rows are to be derived again (see CollectionLog.writeRows). */
  replay: Uint8Array[]
  /**
   * What the stored rows reflect (see CollectionLog.append); undefined when the collection has
   * no rows (stored before they were, or internal), or when its checkpoint does not fit its log
   * (a damaged or repaired store): its rows are then to be built from the whole collection.
   */
  checkpoint: Checkpoint | undefined
  meta: CollectionMeta | undefined
}

export interface DocStoreOptions {
  policy?: Partial<CompactionPolicy>
  now?: () => number
  /** Acknowledge appends once they are in this file; LevelDB is written behind it in batches. */
  wal?: WriteAheadFile
  /** Keep large snapshots as files here, LevelDB holding a reference to each. */
  snapshotFiles?: SnapshotFiles
}

/** Bytes free on top of LevelDB's logs for it to open again: it turns the logs into a table and starts a new log. */
const REOPEN_MARGIN_BYTES = 1024 * 1024

/** Throws unless the disk of a LevelDB folder has room for it to open again (see DocStore.batch). */
async function roomToReopen(dir: string): Promise<void> {
  let need = REOPEN_MARGIN_BYTES
  for (const file of await readdir(dir)) if (file.endsWith('.log')) need += (await stat(join(dir, file))).size
  const fs = await statfs(dir)
  const free = fs.bavail * fs.bsize
  if (free < need) throw new Error(`${free} bytes free on its disk, ${need} needed`)
}

export class DocStore implements LogStore {
  readonly db: BinaryLevel
  readonly policy: CompactionPolicy
  readonly now: () => number
  readonly wal: WriteAheadFile | undefined
  readonly files: SnapshotFiles | undefined
  /** The last log opened for each collection (a reopened collection waits for its writes). */
  private readonly logs = new Map<string, CollectionLog>()
  /**
   * Per collection: appends acknowledged from the write-ahead file that a failed log did not get
   * into LevelDB (a full disk). Written from the file before the collection is opened again.
   */
  private readonly stranded = new Map<string, number>()
  /** A write LevelDB failed with an I/O error (a full disk): it is reopened before the next one (see batch). */
  private levelFailure: unknown
  private reopeningLevel: Promise<void> | undefined
  /** Set when LevelDB reported a damaged block while the collections were listed: the list may lack some. */
  namesDamage: KitsyncError | undefined
  /** The units of the collections and the blobs (unit-layout.ts). */
  readonly units: UnitStore = new UnitStore(this)

  constructor(db: BinaryLevel, options: DocStoreOptions = {}) {
    this.db = db
    this.policy = { ...DEFAULT_COMPACTION, ...options.policy }
    this.now = options.now ?? Date.now
    this.wal = options.wal
    this.files = options.snapshotFiles
  }

  /**
   * Remove snapshot files nothing refers to: written by a process that died before it stored
   * the reference (or before it removed the file a new one replaced). Run before any write;
   * `names`: collectionNames, when the caller has just read them.
   */
  async sweepSnapshotFiles(names?: readonly string[]): Promise<void> {
    if (this.files === undefined) return
    const listed = await this.files.list()
    // A store that holds no collection at all did not load the index these files belong to
    // (a store opened as new, or another store): deleting them would lose the workspace.
    if (listed.size === 0 || (names ?? (await this.collectionNames())).length === 0) return
    for (const [name, files] of listed) {
      const [metaRaw, snapRaw] = await this.db.getMany([metaKey(name), snapshotKey(name)])
      const keep = metaRaw !== undefined && snapRaw !== undefined ? fileRefOf(snapRaw)?.file : undefined
      for (const file of files) if (file !== keep) await this.files.remove(file)
    }
  }

  /** @internal How to store `update` as the snapshot of `name`: framed, or (large) written to a file first. */
  async snapshotValue(name: string, update: Uint8Array): Promise<StoredSnapshot> {
    if (this.files?.wants(name, update.byteLength) !== true) {
      const value = frame(update)
      return { value, bytes: value.byteLength }
    }
    const write = await this.beginFile(name, update)
    await write.done
    return storedFile(write.ref)
  }

  /** @internal Start writing `update` as a snapshot file; resolves once the write is under way. */
  async beginFile(name: string, update: Uint8Array): Promise<SnapshotFileWrite> {
    try {
      const write = await (this.files as SnapshotFiles).begin(name, update)
      write.done.catch(() => undefined) // awaited by the caller; not unhandled meanwhile
      return write
    } catch (err) {
      throw storageFailure(name, 'cannot write its snapshot file', err)
    }
  }

  /**
   * Write updates left in the write-ahead file by a process that stopped before LevelDB had
   * them. Updates LevelDB already has are harmless: Yjs ignores what a document contains.
   */
  async recover(entries: WalEntry[]): Promise<void> {
    const byCollection = new Map<string, WalEntry[]>()
    for (const e of entries) {
      let list = byCollection.get(e.collection)
      if (list === undefined) byCollection.set(e.collection, (list = []))
      list.push(e)
    }
    for (const [name, list] of byCollection) {
      // With their rows when they bring them (wal-recovery.ts): reads then need no replay.
      const withRows = await (await import('./wal-recovery.js')).recoveryWithRows(this.db, name, list) // loaded only after a crash
      if (withRows !== undefined) {
        if (withRows.length > 0) await this.batch(withRows)
      } else
        await this.recoverCollection(
          name,
          list.filter((e) => e.update.byteLength > 0).map((e) => e.update),
        )
    }
    this.wal?.clear()
  }

  private async recoverCollection(name: string, updates: Uint8Array[]): Promise<void> {
    let lastSeq = -1
    for await (const key of this.db.keys({ ...updateRange(name), reverse: true, limit: 1 })) lastSeq = seqOf(name, key)
    // After a compaction the log is empty and its seqs go on from the checkpoint's: the
    // updates written here come after it, so their rows are derived at the next open.
    const cp = await this.db.get(checkpointKey(name))
    const payload = cp === undefined ? undefined : unframe(cp)
    const checkpoint = payload === undefined ? undefined : checkpointOf(payload)
    if (lastSeq === -1 && checkpoint !== undefined) lastSeq = checkpoint.seq
    const ops: BatchOp[] = []
    if ((await this.db.get(metaKey(name))) === undefined) {
      ops.push({ type: 'put', key: metaKey(name), value: jsonValue(newMeta(this.now())) })
      ops.push({ type: 'del', key: snapshotKey(name) })
    }
    for (const u of updates) ops.push({ type: 'put', key: updateKey(name, ++lastSeq), value: frame(u) })
    await this.batch(ops)
  }

  /**
   * @internal Every write of the store goes through here. LevelDB's own log is not to be trusted
   * after it failed to write to it (a full disk cuts a record short, and LevelDB lays out the
   * records after it where the lost bytes were), and a failed write of a table file makes it
   * refuse every write until it is opened again. So after a write fails with an I/O error the
   * database is closed and opened again before the next write: LevelDB then recovers what its
   * log holds whole and starts a new one. Until that succeeds (the disk still full), writes fail
   * with STORAGE_FAILED; what was acknowledged is in the write-ahead file meanwhile.
   */
  async batch(ops: BatchOp[], options?: { sync?: boolean }): Promise<void> {
    if (this.levelFailure !== undefined) await this.reopenLevel()
    try {
      // (`sync` is classic-level's option; abstract-level's types do not list it, memory-level ignores it.)
      await this.db.batch(ops, (options ?? {}) as object)
    } catch (err) {
      if (isLevelIoError(err)) this.levelFailure = err
      throw err
    }
  }

  private reopenLevel(): Promise<void> {
    this.reopeningLevel ??= (async () => {
      try {
        if (this.db.status === 'open') {
          // Closed on a disk still full, it could not be opened again: reads would fail too.
          const location = (this.db as { location?: unknown }).location
          if (typeof location === 'string') await roomToReopen(location)
          await this.db.close()
        }
        // It was open a moment ago: never create it anew here.
        await this.db.open({ createIfMissing: false })
        this.levelFailure = undefined
      } catch (err) {
        const cause = (err as { cause?: Error }).cause ?? (err as Error)
        throw new KitsyncError('STORAGE_FAILED', `the store could not be opened again after a failed write: ${cause.message}`, { cause: err })
      } finally {
        this.reopeningLevel = undefined
      }
    })()
    return this.reopeningLevel
  }

  /** @internal A failed log of `name` leaves `count` acknowledged appends only in the write-ahead file. */
  strand(name: string, count: number): void {
    if (count > 0) this.stranded.set(name, (this.stranded.get(name) ?? 0) + count)
  }

  /**
   * Before a collection is opened again in this process: let the log opened before finish its
   * writes, and write to LevelDB what a failed one left only in the write-ahead file, so the
   * collection reloads with every acknowledged update and its sequence numbers do not collide.
   * Updates LevelDB has already are harmless again (see recover).
   */
  private async reopening(name: string): Promise<void> {
    await this.logs.get(name)?.flush()
    if (this.levelFailure !== undefined && this.db.status !== 'open') await this.reopenLevel()
    const count = this.stranded.get(name)
    if (count === undefined || this.wal === undefined) return
    const updates = this.wal
      .read()
      .filter((e) => e.collection === name && e.update.byteLength > 0)
      .map((e) => e.update)
    try {
      await this.recoverCollection(name, updates)
    } catch (err) {
      throw storageFailure(name, 'cannot write its acknowledged updates to the store', err)
    }
    this.stranded.delete(name)
    this.wal.settled(count)
  }

  /** A JSON value kept on this device only (never synced), under `l!<key>`. */
  async getLocal(key: string): Promise<unknown> {
    let raw: Uint8Array | undefined
    try {
      raw = await this.db.get(localKey(key))
    } catch (err) {
      if (!isLevelCorruption(err)) throw err
      throw new KitsyncError('DATA_CORRUPTION', `local value ${key}: ${levelDamage(err)}; it was left as it is`, { cause: err })
    }
    if (raw === undefined) return undefined
    const payload = unframe(raw)
    if (payload === undefined) throw new KitsyncError('DATA_CORRUPTION', `local value ${key} is damaged; it was left as it is`)
    return parseJson(payload)
  }

  async putLocal(key: string, value: unknown): Promise<void> {
    await this.batch([{ type: 'put', key: localKey(key), value: jsonValue(value) }])
  }

  async collectionNames(): Promise<string[]> {
    const names: string[] = []
    try {
      for await (const key of this.db.keys(META_RANGE)) names.push(key.slice(2))
      return names
    } catch (err) {
      if (!isLevelCorruption(err)) throw err
    }
    // LevelDB reads past a damaged block (of any collection: the range of one table file can
    // span several) and reports the damage once it reaches the end, in place of the last batch
    // it read. One key at a time, nothing read is lost to it; a collection whose metadata is
    // in the damaged block is not listed: namesDamage says so (shown by list and export).
    names.length = 0
    const keys = this.db.keys(META_RANGE)
    try {
      for (let batch = await keys.nextv(1); batch.length > 0; batch = await keys.nextv(1)) names.push(...batch.map((key) => key.slice(2)))
    } catch (err) {
      if (!isLevelCorruption(err)) throw err
      const location = (this.db as { location?: unknown }).location
      const where = typeof location === 'string' ? `${location}: ` : ''
      this.namesDamage = new KitsyncError(
        'DATA_CORRUPTION',
        `${where}${levelDamage(err)}; a collection whose metadata is in it is not listed (its name still reaches it); the stored data was left as it is`,
        { cause: err },
      )
    } finally {
      await keys.close()
    }
    return names
  }

  /** Whether the collection is stored (its metadata is); DATA_CORRUPTION if LevelDB reports damage where it would be. */
  async stored(name: string): Promise<boolean> {
    try {
      return (await this.db.get(metaKey(name))) !== undefined
    } catch (err) {
      throw readFailure(name, err)
    }
  }

  /**
   * Open the log of one collection. `snapshot` must return the full current state as one
   * update (Y.encodeStateAsUpdate); the log calls it when it compacts. `listed`: false for a
   * collection that collectionNames did not list and nothing wrote since (its owner knows):
   * nothing is read then, as in `create` (even an empty range costs a scan over the deletions
   * a compaction left after it: 20 ms behind a compacted 1,000,000-record collection).
   */
  async open(name: string, snapshot: () => Uint8Array, listed = true): Promise<{ log: CollectionLog; loaded: LoadedLog }> {
    if (!listed && this.namesDamage === undefined && !this.logs.has(name) && !this.stranded.has(name)) return this.create(name, snapshot)
    const corrupt = (what: string, cause?: unknown): KitsyncError => corruption(name, what, cause)
    await this.reopening(name)
    let metaRaw: Uint8Array | undefined
    let snapRaw: Uint8Array | undefined
    let checkpointRaw: Uint8Array | undefined
    try {
      ;[metaRaw, snapRaw] = await this.db.getMany([metaKey(name), snapshotKey(name)])
      // Only a stored app collection has rows (kitsync's own have none): no read for the others.
      if (metaRaw !== undefined && !isInternalCollection(name)) checkpointRaw = await this.db.get(checkpointKey(name))
    } catch (err) {
      throw readFailure(name, err)
    }
    let meta: CollectionMeta | undefined
    if (metaRaw !== undefined) {
      const payload = unframe(metaRaw)
      if (payload === undefined) throw corrupt('damaged metadata')
      try {
        meta = parseJson(payload) as CollectionMeta
      } catch (err) {
        throw corrupt('unreadable metadata', err)
      }
    }
    const payload = checkpointRaw === undefined || meta === undefined ? undefined : unframe(checkpointRaw)
    let checkpoint = payload === undefined ? undefined : checkpointOf(payload)
    // A snapshot without metadata is a copy whose adoption was interrupted (see CollectionLog.adopt): not part of the collection.
    const read = await this.readUpdates(name, meta === undefined ? undefined : snapRaw, checkpoint?.seq)
    const { snapshotBytes, snapshotFile, logBytes, logEntries } = read
    let { updates, replay, lastSeq } = read
    if (checkpoint !== undefined) {
      // Seqs go on from the checkpoint's after a compaction emptied the log (see CollectionLog.writeCompaction).
      if (logEntries === 0) lastSeq = Math.max(lastSeq, checkpoint.seq)
      // A compaction deletes the log entries its checkpoint covers in the same batch: a
      // checkpoint before the log's first entry, or past its last, is not this log's.
      else if (checkpoint.seq < read.firstSeq - 1 || checkpoint.seq > lastSeq) checkpoint = undefined
    }
    if (checkpoint === undefined && replay.length > 0) {
      updates = [...updates, ...replay]
      replay = []
    }
    const log = new CollectionLog(this, name, snapshot, {
      exists: meta !== undefined,
      ...(snapshotFile === undefined ? {} : { snapshotFile }),
      lastSeq,
      state: { snapshotBytes, logBytes, logEntries, oldestEntryAt: logEntries > 0 ? this.now() : undefined },
      ...(checkpoint === undefined ? {} : { records: checkpoint.records }),
      ...(checkpoint?.rules === undefined ? {} : { rules: checkpoint.rules }),
    })
    this.logs.set(name, log)
    return { log, loaded: { updates, replay, checkpoint, meta } }
  }

  /** The checkpoint of a collection's rows (see CollectionLog.append), without loading it; undefined without one. */
  async checkpoint(name: string): Promise<Checkpoint | undefined> {
    let raw: Uint8Array | undefined
    try {
      raw = await this.db.get(checkpointKey(name))
    } catch (err) {
      throw readFailure(name, err)
    }
    const payload = raw === undefined ? undefined : unframe(raw)
    return payload === undefined ? undefined : checkpointOf(payload)
  }

  /**
   * Delete a collection: its data and every row derived from it, in one batch. (Nothing may
   * hold the collection loaded.)
   */
  async drop(name: string): Promise<void> {
    const ops: BatchOp[] = [metaKey(name), snapshotKey(name), vectorKey(name), checkpointKey(name)].map((key) => ({ type: 'del', key }))
    try {
      for (const range of [updateRange(name), derivedRange('r', name), derivedRange('h', name), derivedRange('c', name)]) {
        for await (const key of this.db.keys(range)) ops.push({ type: 'del', key })
      }
      for (const op of await this.units.dropAllOps(name)) ops.push(op)
      const ref = this.files === undefined ? undefined : await this.db.get(snapshotKey(name))
      await this.batch(ops, { sync: true })
      const file = ref === undefined ? undefined : fileRefOf(ref)?.file
      if (file !== undefined) await this.files?.remove(file).catch(() => undefined) // swept at the next start
    } catch (err) {
      throw damageOr(name, err)
    }
    this.logs.delete(name)
  }

  /** A log that was flushed and stopped (its document dropped while idle) is not kept: it holds the document. */
  forget(name: string, log: CollectionLog): void {
    if (this.logs.get(name) === log) this.logs.delete(name)
  }

  /**
   * The log of a collection this device has no metadata for, without reading the store: the
   * metadata goes in the same batch as a collection's first updates, so nothing else of it
   * can be stored either. (A device adopting a collection from a peer skips two reads.)
   */
  create(name: string, snapshot: () => Uint8Array): { log: CollectionLog; loaded: LoadedLog } {
    const log = new CollectionLog(this, name, snapshot, {
      exists: false,
      lastSeq: -1,
      state: { snapshotBytes: 0, logBytes: 0, logEntries: 0, oldestEntryAt: undefined },
    })
    this.logs.set(name, log)
    return { log, loaded: { updates: [], replay: [], checkpoint: undefined, meta: undefined } }
  }

  /** The snapshot (as read by the caller) and the log after it, checked entry by entry; the entries after seq `after` apart, in `replay`. */
  private async readUpdates(
    name: string,
    snapRaw: Uint8Array | undefined,
    after = Infinity,
  ): Promise<{
    updates: Uint8Array[]
    replay: Uint8Array[]
    snapshotBytes: number
    snapshotFile?: string
    firstSeq: number
    lastSeq: number
    logBytes: number
    logEntries: number
  }> {
    const updates: Uint8Array[] = []
    const replay: Uint8Array[] = []
    let snapshotBytes = 0
    let snapshotFile: string | undefined
    if (snapRaw !== undefined && snapRaw[0] === FILE_REF_FORMAT) {
      const ref = fileRefOf(snapRaw)
      if (ref === undefined || this.files === undefined) throw corruption(name, 'damaged snapshot reference')
      let payload: Uint8Array | undefined
      try {
        payload = await this.files.read(ref)
      } catch (err) {
        throw storageFailure(name, 'cannot read its snapshot file', err)
      }
      if (payload === undefined) throw corruption(name, `snapshot file ${ref.file} is missing or damaged`)
      updates.push(payload)
      snapshotBytes = storedFile(ref).bytes
      snapshotFile = ref.file
    } else if (snapRaw !== undefined) {
      const payload = unframe(snapRaw)
      if (payload === undefined) throw corruption(name, 'damaged snapshot')
      updates.push(payload)
      snapshotBytes = snapRaw.byteLength
    }
    let firstSeq = -1
    let lastSeq = -1
    let logBytes = 0
    let logEntries = 0
    const prefix = updatePrefix(name)
    try {
      for await (const [key, value] of this.db.iterator(updateRange(name))) {
        const payload = unframe(value)
        if (payload === undefined) throw corruption(name, `damaged update ${key.slice(prefix.length)}`)
        lastSeq = seqOf(name, key)
        if (logEntries === 0) firstSeq = lastSeq
        if (lastSeq > after) replay.push(payload)
        else updates.push(payload)
        logBytes += value.byteLength
        logEntries++
      }
    } catch (err) {
      throw damageOr(name, err)
    }
    return { updates, replay, snapshotBytes, ...(snapshotFile === undefined ? {} : { snapshotFile }), firstSeq, lastSeq, logBytes, logEntries }
  }

  /** @internal What is stored for a collection now: the snapshot, then the log (see CollectionLog.storedState). */
  async readStored(name: string): Promise<Uint8Array[]> {
    let snapRaw: Uint8Array | undefined
    try {
      snapRaw = await this.db.get(snapshotKey(name))
    } catch (err) {
      throw damageOr(name, err)
    }
    return (await this.readUpdates(name, snapRaw)).updates
  }
}
