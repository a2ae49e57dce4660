import { readdir, stat, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbstractLevel } from 'abstract-level'
import { compactionDue, DEFAULT_COMPACTION, type CompactionPolicy, type LogState } from '../core/compaction-policy.js'
import { KitsyncError } from '../core/errors.js'
import { FILE_REF_FORMAT, FRAME_HEADER_BYTES, frame, unframe } from './framing.js'
import type { SnapshotFileRef, SnapshotFiles } from './snapshot-files.js'
import type { WriteAheadFile } from './wal.js'

/** Any abstract-level database with string keys and binary values (classic-level, memory-level). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type BinaryLevel = AbstractLevel<any, string, Uint8Array>

/**
 * Key layout (collection names never contain '!', so prefixes do not overlap):
 *   m!<name>             collection metadata (JSON), written with its first update
 *   s!<name>             snapshot: one Yjs update holding everything compacted so far, or (format 2) a
 *                        reference to the file that holds it (see SnapshotFiles); ignored without
 *                        m!<name> (a peer's copy whose adoption was interrupted, see CollectionLog.adopt)
 *   v!<name>             no longer written (a state vector of the snapshot that nothing read; compaction deletes it)
 *   u!<name>!<seq:16hex> one Yjs update written after the snapshot
 *   l!<key>              a value of this device only (e.g. the revoked ids it has seen)
 * Appends and compactions are atomic batches, so a crash leaves either the old or the new state.
 */
const SEQ_WIDTH = 16
const metaKey = (name: string): string => `m!${name}`
const snapshotKey = (name: string): string => `s!${name}`
const vectorKey = (name: string): string => `v!${name}`
const updatePrefix = (name: string): string => `u!${name}!`
const updateKey = (name: string, seq: number): string => updatePrefix(name) + seq.toString(16).padStart(SEQ_WIDTH, '0')
const encoder = new TextEncoder()
const decoder = new TextDecoder()

export interface CollectionMeta {
  kind: string
  createdAt: number
}

export interface LoadedLog {
  /** The snapshot (if any) followed by the logged updates, in write order. */
  updates: Uint8Array[]
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

type BatchOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

/** A snapshot as LevelDB stores it: the framed update, or a reference to the file written with it. */
interface StoredSnapshot {
  value: Uint8Array
  file?: SnapshotFileRef
  /** What the snapshot counts for in the collection's size. */
  bytes: number
}

/** A snapshot file being written: its reference, and when it is on disk. */
interface FileWrite {
  ref: SnapshotFileRef
  done: Promise<void>
}

/** The reference a format-2 snapshot value holds, or undefined if it is not one (or damaged). */
function fileRefOf(value: Uint8Array): SnapshotFileRef | undefined {
  const payload = unframe(value, FILE_REF_FORMAT)
  if (payload === undefined) return undefined
  try {
    const ref = JSON.parse(decoder.decode(payload)) as Partial<SnapshotFileRef>
    return typeof ref.file === 'string' && typeof ref.bytes === 'number' && typeof ref.crc === 'number' ? { file: ref.file, bytes: ref.bytes, crc: ref.crc } : undefined
  } catch {
    return undefined
  }
}

function storedFile(ref: SnapshotFileRef): StoredSnapshot {
  return { value: frame(encoder.encode(JSON.stringify(ref)), FILE_REF_FORMAT), file: ref, bytes: ref.bytes + FRAME_HEADER_BYTES }
}

function corruption(collection: string, what: string, cause?: unknown): KitsyncError {
  return new KitsyncError('DATA_CORRUPTION', `collection ${collection}: ${what}; the stored data was left as it is`, { details: { collection }, cause })
}

/** LevelDB's own report that one of its files is damaged (classic-level's LEVEL_CORRUPTION, "Corruption: ..."). */
function isLevelCorruption(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown }; message?: unknown }
  return e.code === 'LEVEL_CORRUPTION' || e.cause?.code === 'LEVEL_CORRUPTION' || (typeof e.message === 'string' && e.message.startsWith('Corruption:'))
}

/** What a collection's DATA_CORRUPTION says when LevelDB found the damage (see isLevelCorruption). */
const levelDamage = (err: unknown): string => `LevelDB reports a damaged block in its table files (${(err as Error).message})`

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

/** Appends queued for LevelDB beyond this wait for LevelDB again (the writer is too fast). */
const MAX_UNWRITTEN = 10_000
/** How long appends already in the write-ahead file wait for others before going to LevelDB. */
const WRITE_BEHIND_MS = 10
/** A collection stored in fewer bytes is sent from its document, not its store (see CollectionLog.storedState). */
const STORED_STATE_MIN_BYTES = 64 * 1024
/** A log longer than this is not sent entry by entry (see CollectionLog.storedState). */
const MAX_STORED_ENTRIES = 256

export class DocStore {
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

  constructor(db: BinaryLevel, options: DocStoreOptions = {}) {
    this.db = db
    this.policy = { ...DEFAULT_COMPACTION, ...options.policy }
    this.now = options.now ?? Date.now
    this.wal = options.wal
    this.files = options.snapshotFiles
  }

  /**
   * Remove snapshot files nothing refers to: written by a process that died before it stored
   * the reference (or before it removed the file a new one replaced). Run before any write.
   */
  async sweepSnapshotFiles(): Promise<void> {
    if (this.files === undefined) return
    const listed = await this.files.list()
    // A store that holds no collection at all did not load the index these files belong to
    // (a store opened as new, or another store): deleting them would lose the workspace.
    if (listed.size === 0 || (await this.collectionNames()).length === 0) return
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
  async beginFile(name: string, update: Uint8Array): Promise<FileWrite> {
    try {
      const write = await (this.files as SnapshotFiles).begin(name, update)
      write.done.catch(() => undefined) // awaited by the caller; not unhandled meanwhile
      return write
    } catch (err) {
      throw new KitsyncError('STORAGE_FAILED', `collection ${name}: cannot write its snapshot file: ${(err as Error).message}`, { cause: err, details: { collection: name } })
    }
  }

  /**
   * Write updates left in the write-ahead file by a process that stopped before LevelDB had
   * them. Updates LevelDB already has are harmless: Yjs ignores what a document contains.
   */
  async recover(entries: { collection: string; update: Uint8Array }[]): Promise<void> {
    const byCollection = new Map<string, Uint8Array[]>()
    for (const e of entries) {
      let list = byCollection.get(e.collection)
      if (list === undefined) byCollection.set(e.collection, (list = []))
      list.push(e.update)
    }
    for (const [name, updates] of byCollection) await this.recoverCollection(name, updates)
    this.wal?.clear()
  }

  private async recoverCollection(name: string, updates: Uint8Array[]): Promise<void> {
    const prefix = updatePrefix(name)
    let lastSeq = -1
    for await (const key of this.db.keys({ gte: prefix, lt: prefix.slice(0, -1) + '"', reverse: true, limit: 1 })) lastSeq = parseInt(key.slice(prefix.length), 16)
    const ops: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = []
    if ((await this.db.get(metaKey(name))) === undefined) {
      ops.push({ type: 'put', key: metaKey(name), value: frame(encoder.encode(JSON.stringify({ kind: 'records', createdAt: this.now() }))) })
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
      const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code
      if (code === 'LEVEL_IO_ERROR') this.levelFailure = err
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
      .filter((e) => e.collection === name)
      .map((e) => e.update)
    try {
      await this.recoverCollection(name, updates)
    } catch (err) {
      throw new KitsyncError('STORAGE_FAILED', `collection ${name}: cannot write its acknowledged updates to the store: ${(err as Error).message}`, {
        cause: err,
        details: { collection: name },
      })
    }
    this.stranded.delete(name)
    this.wal.settled(count)
  }

  /** A JSON value kept on this device only (never synced), under `l!<key>`. */
  async getLocal(key: string): Promise<unknown> {
    let raw: Uint8Array | undefined
    try {
      raw = await this.db.get(`l!${key}`)
    } catch (err) {
      if (!isLevelCorruption(err)) throw err
      throw new KitsyncError('DATA_CORRUPTION', `local value ${key}: ${levelDamage(err)}; it was left as it is`, { cause: err })
    }
    if (raw === undefined) return undefined
    const payload = unframe(raw)
    if (payload === undefined) throw new KitsyncError('DATA_CORRUPTION', `local value ${key} is damaged; it was left as it is`)
    return JSON.parse(decoder.decode(payload)) as unknown
  }

  async putLocal(key: string, value: unknown): Promise<void> {
    await this.batch([{ type: 'put', key: `l!${key}`, value: frame(encoder.encode(JSON.stringify(value))) }])
  }

  async collectionNames(): Promise<string[]> {
    const names: string[] = []
    try {
      for await (const key of this.db.keys({ gte: 'm!', lt: 'm"' })) names.push(key.slice(2))
      return names
    } catch (err) {
      if (!isLevelCorruption(err)) throw err
    }
    // LevelDB reads past a damaged block (of any collection: the range of one table file can
    // span several) and reports the damage once it reaches the end, in place of the last batch
    // it read. One key at a time, nothing read is lost to it; a collection whose metadata is
    // in the damaged block is not listed: namesDamage says so (shown by list and export).
    names.length = 0
    const keys = this.db.keys({ gte: 'm!', lt: 'm"' })
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
      if (isLevelCorruption(err)) throw corruption(name, levelDamage(err), err)
      throw new KitsyncError('STORAGE_FAILED', `collection ${name}: cannot read the store: ${(err as Error).message}`, { cause: err, details: { collection: name } })
    }
  }

  /**
   * Open the log of one collection. `snapshot` must return the full current state as one
   * update (Y.encodeStateAsUpdate); the log calls it when it compacts.
   */
  async open(name: string, snapshot: () => Uint8Array): Promise<{ log: CollectionLog; loaded: LoadedLog }> {
    const corrupt = (what: string, cause?: unknown): KitsyncError => corruption(name, what, cause)
    await this.reopening(name)
    let metaRaw: Uint8Array | undefined
    let snapRaw: Uint8Array | undefined
    try {
      ;[metaRaw, snapRaw] = await this.db.getMany([metaKey(name), snapshotKey(name)])
    } catch (err) {
      if (isLevelCorruption(err)) throw corrupt(levelDamage(err), err)
      throw new KitsyncError('STORAGE_FAILED', `collection ${name}: cannot read the store: ${(err as Error).message}`, { cause: err, details: { collection: name } })
    }
    let meta: CollectionMeta | undefined
    if (metaRaw !== undefined) {
      const payload = unframe(metaRaw)
      if (payload === undefined) throw corrupt('damaged metadata')
      try {
        meta = JSON.parse(decoder.decode(payload)) as CollectionMeta
      } catch (err) {
        throw corrupt('unreadable metadata', err)
      }
    }
    // A snapshot without metadata is a copy whose adoption was interrupted (see CollectionLog.adopt): not part of the collection.
    const { updates, snapshotBytes, snapshotFile, lastSeq, logBytes, logEntries } = await this.readUpdates(name, meta === undefined ? undefined : snapRaw, corrupt)
    const log = new CollectionLog(this, name, snapshot, {
      exists: meta !== undefined,
      ...(snapshotFile === undefined ? {} : { snapshotFile }),
      lastSeq,
      state: { snapshotBytes, logBytes, logEntries, oldestEntryAt: logEntries > 0 ? this.now() : undefined },
    })
    this.logs.set(name, log)
    return { log, loaded: { updates, meta } }
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
    return { log, loaded: { updates: [], meta: undefined } }
  }

  /** The snapshot (as read by the caller) and the log after it, checked entry by entry. */
  private async readUpdates(
    name: string,
    snapRaw: Uint8Array | undefined,
    corrupt: (what: string) => KitsyncError,
  ): Promise<{ updates: Uint8Array[]; snapshotBytes: number; snapshotFile?: string; lastSeq: number; logBytes: number; logEntries: number }> {
    const updates: Uint8Array[] = []
    let snapshotBytes = 0
    let snapshotFile: string | undefined
    if (snapRaw !== undefined && snapRaw[0] === FILE_REF_FORMAT) {
      const ref = fileRefOf(snapRaw)
      if (ref === undefined || this.files === undefined) throw corrupt('damaged snapshot reference')
      let payload: Uint8Array | undefined
      try {
        payload = await this.files.read(ref)
      } catch (err) {
        throw new KitsyncError('STORAGE_FAILED', `collection ${name}: cannot read its snapshot file: ${(err as Error).message}`, { cause: err, details: { collection: name } })
      }
      if (payload === undefined) throw corrupt(`snapshot file ${ref.file} is missing or damaged`)
      updates.push(payload)
      snapshotBytes = storedFile(ref).bytes
      snapshotFile = ref.file
    } else if (snapRaw !== undefined) {
      const payload = unframe(snapRaw)
      if (payload === undefined) throw corrupt('damaged snapshot')
      updates.push(payload)
      snapshotBytes = snapRaw.byteLength
    }
    let lastSeq = -1
    let logBytes = 0
    let logEntries = 0
    const prefix = updatePrefix(name)
    try {
      for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefix.slice(0, -1) + '"' })) {
        const payload = unframe(value)
        if (payload === undefined) throw corrupt(`damaged update ${key.slice(prefix.length)}`)
        updates.push(payload)
        lastSeq = parseInt(key.slice(prefix.length), 16)
        logBytes += value.byteLength
        logEntries++
      }
    } catch (err) {
      if (isLevelCorruption(err)) throw corrupt(levelDamage(err))
      throw err
    }
    return { updates, snapshotBytes, ...(snapshotFile === undefined ? {} : { snapshotFile }), lastSeq, logBytes, logEntries }
  }

  /** @internal What is stored for a collection now: the snapshot, then the log (see CollectionLog.storedState). */
  async readStored(name: string): Promise<Uint8Array[]> {
    let snapRaw: Uint8Array | undefined
    try {
      snapRaw = await this.db.get(snapshotKey(name))
    } catch (err) {
      if (isLevelCorruption(err)) throw corruption(name, levelDamage(err), err)
      throw err
    }
    return (await this.readUpdates(name, snapRaw, (what) => corruption(name, what))).updates
  }
}

interface PendingAppend {
  update: Uint8Array
  /** It is in the write-ahead file too (settled there once LevelDB has it). */
  logged: boolean
  /** A copy being adopted (see CollectionLog.adopt): whether its owner kept it. */
  kept?: Promise<boolean>
  /** Its snapshot file, already being written (see CollectionLog.adopt). */
  file?: FileWrite
  resolve: () => void
  reject: (err: unknown) => void
}

/** The first copy of a collection, stored while its owner checks it (see CollectionLog.adopt). */
export interface Adoption {
  /** The copy is good: it becomes the collection. Resolves once it is stored. */
  keep(): Promise<void>
  /** The copy is not good: what was written of it is removed. Resolves once it is. */
  drop(): Promise<void>
}

/**
 * The persisted update log of one collection. Appends are written in atomic batches; appends
 * that arrive while a batch is being written go together into the next one (group commit).
 * A promise returned by `append` resolves once LevelDB has the update in its write-ahead
 * log, which survives the process being killed.
 */
export class CollectionLog {
  readonly name: string
  private readonly store: DocStore
  private readonly snapshot: () => Uint8Array
  private exists: boolean
  /** The file the stored snapshot is in, if it is in one (see SnapshotFiles). */
  private snapshotFile: string | undefined
  private lastSeq: number
  private readonly state: LogState
  private pending: PendingAppend[] = []
  /** Set while appends in the write-ahead file wait to be written to LevelDB together (see kickSoon). */
  private behindTimer: NodeJS.Timeout | undefined
  /** An append that skipped the write-ahead file and is not in LevelDB yet (see append). */
  private unlogged: Promise<void> | undefined
  private running: Promise<void> | undefined
  private compactRequested = false
  /** When the last update was appended (a due compaction waits for a pause). */
  private lastAppendAt = -Infinity
  private idleTimer: NodeJS.Timeout | undefined
  private stopped = false
  private failure: KitsyncError | undefined

  constructor(
    store: DocStore,
    name: string,
    snapshot: () => Uint8Array,
    init: { exists: boolean; snapshotFile?: string; lastSeq: number; state: LogState },
  ) {
    this.store = store
    this.name = name
    this.snapshot = snapshot
    this.exists = init.exists
    this.snapshotFile = init.snapshotFile
    this.lastSeq = init.lastSeq
    this.state = init.state
  }

  /** Sizes for `list` and `status`. */
  stats(): { bytes: number; logEntries: number; snapshotBytes: number } {
    return { bytes: this.state.snapshotBytes + this.state.logBytes, logEntries: this.state.logEntries, snapshotBytes: this.state.snapshotBytes }
  }

  append(update: Uint8Array): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    this.lastAppendAt = this.store.now()
    const wal = this.store.wal
    if (wal !== undefined && !this.isWholeState(update)) {
      try {
        wal.append(this.name, update)
      } catch (err) {
        // The document now holds an update the disk does not: this log takes no more (its
        // owner reloads the collection), but what is queued still goes to LevelDB.
        this.failure = err as KitsyncError
        return Promise.reject(err)
      }
      // Durable now; LevelDB follows in a batch. A writer far ahead of LevelDB waits for it.
      // An update behind one that skipped the write-ahead file is durable only with it.
      const behind = this.pending.length >= MAX_UNWRITTEN
      const written = new Promise<void>((resolve, reject) => {
        this.pending.push({ update, logged: true, resolve, reject: behind ? reject : () => undefined })
        if (behind) this.kick()
        else this.kickSoon()
      })
      return behind ? written : (this.unlogged ?? Promise.resolve())
    }
    return this.writeUnlogged(update)
  }

  /**
   * Store the first copy of a collection, taken from a peer, while the caller checks it (by
   * applying it): the system (a snapshot file) or LevelDB writes the megabytes of a large
   * copy on another thread meanwhile. Resolves once that write is under way. The metadata
   * that makes the copy a collection (see DocStore.open) is written only once the caller
   * keeps it; dropped, what was written of it is removed. Only for a collection nothing is
   * stored of; a copy too small to be a snapshot is appended when kept.
   */
  async adopt(update: Uint8Array): Promise<Adoption> {
    const fallback: Adoption = { keep: () => this.append(update), drop: async () => undefined }
    if (this.failure !== undefined || this.exists || !this.isWholeState(update)) return fallback
    const file = this.store.files?.wants(this.name, update.byteLength) === true ? await this.store.beginFile(this.name, update) : undefined
    // Nothing else can have been queued meanwhile: the log is new and only its owner has it.
    if (!this.isWholeState(update)) {
      if (file !== undefined) void file.done.then(() => this.store.files?.remove(file.ref.file)).catch(() => undefined)
      return fallback
    }
    this.lastAppendAt = this.store.now()
    let decide: (keep: boolean) => void = () => undefined
    const kept = new Promise<boolean>((resolve) => {
      decide = resolve
    })
    const written = this.writeUnlogged(update, kept, file)
    // Handled by whoever keeps it; a dropped copy's failure is expected.
    written.catch(() => undefined)
    return {
      keep: () => {
        decide(true)
        return written
      },
      drop: () => {
        decide(false)
        return written.then(
          () => undefined,
          () => undefined,
        )
      },
    }
  }

  /** An append that skips the write-ahead file: LevelDB gets it in a batch of its own, at once. */
  private writeUnlogged(update: Uint8Array, kept?: Promise<boolean>, file?: FileWrite): Promise<void> {
    const written = new Promise<void>((resolve, reject) => {
      this.pending.push({ update, logged: false, resolve, reject, ...(kept === undefined ? {} : { kept }), ...(file === undefined ? {} : { file }) })
      this.kick()
    })
    if (this.store.wal !== undefined) {
      // The whole state of a new collection goes to LevelDB at once (as its snapshot): writing
      // it to the write-ahead file first would only copy megabytes twice.
      this.unlogged = written
      const clear = (): void => {
        if (this.unlogged === written) this.unlogged = undefined
      }
      written.then(clear, clear)
    }
    return written
  }

  /** An update that, written now and alone, would become the collection's snapshot (see writeAppends). */
  private isWholeState(update: Uint8Array): boolean {
    return this.pending.length === 0 && this.running === undefined && this.storedAsSnapshot(update)
  }

  /** The first update of an empty collection, large enough to be stored as its snapshot. */
  private storedAsSnapshot(update: Uint8Array): boolean {
    return this.state.snapshotBytes === 0 && this.state.logEntries === 0 && update.byteLength > this.store.policy.minBytes
  }

  /**
   * Everything stored for this collection, the snapshot first, with the appends not yet in
   * LevelDB after it: together they hold every update the collection's document has taken (its
   * owner appends each one as it happens). A device that has nothing of the collection can be
   * sent these as they are instead of a fresh Y.encodeStateAsUpdate of the document, which
   * costs far more for a large collection. Undefined when encoding is cheaper (a small
   * collection, or a long log that would be sent entry by entry) or a write failed.
   */
  async storedState(): Promise<Uint8Array[] | undefined> {
    if (this.stats().bytes < STORED_STATE_MIN_BYTES) return undefined
    while (this.running !== undefined) await this.running
    if (this.failure !== undefined || this.state.logEntries + this.pending.length > MAX_STORED_ENTRIES) return undefined
    // In the writer's place: a compaction between reading the snapshot and the log would
    // delete entries the old snapshot does not hold.
    return this.exclusive(async () => {
      try {
        const stored = await this.store.readStored(this.name)
        for (const p of this.pending) stored.push(p.update)
        return stored
      } catch {
        // The caller encodes the document instead, which holds the same.
        return undefined
      }
    })
  }

  /** No compaction or deferred write starts from now on (the owner is closing; it flushes and compacts by itself first). */
  stop(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer)
    if (this.behindTimer !== undefined) clearTimeout(this.behindTimer)
    this.idleTimer = undefined
    this.behindTimer = undefined
    this.stopped = true
  }

  /** Check the triggers; called from a timer by the owner. */
  tick(): void {
    this.checkCompaction()
  }

  /** Compact if due: at once if urgent, else once no append came for the policy's idleMs. */
  private checkCompaction(): void {
    // A failed log's document may hold an update that was refused: it must never become a snapshot.
    if (this.failure !== undefined) return
    const now = this.store.now()
    const due = compactionDue(this.store.policy, this.state, now)
    if (due === undefined) return
    const quietFor = now - this.lastAppendAt
    if (due === 'now' || quietFor >= this.store.policy.idleMs) {
      this.requestCompaction()
      return
    }
    if (this.idleTimer !== undefined) return
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined
      if (this.failure === undefined && !this.stopped) this.checkCompaction()
    }, this.store.policy.idleMs - quietFor)
    this.idleTimer.unref()
  }

  /** Compact now, whatever the policy says; resolves when the new snapshot is written. */
  async compactNow(): Promise<void> {
    if (this.failure === undefined) this.requestCompaction()
    await this.flush()
  }

  /** Resolves when everything queued so far is written. */
  async flush(): Promise<void> {
    if (this.behindTimer !== undefined) this.kick()
    while (this.running !== undefined) await this.running
  }

  private requestCompaction(): void {
    this.compactRequested = true
    this.kick()
  }

  /**
   * Write what the write-ahead file holds to LevelDB a little later, together with whatever
   * comes meanwhile. It is durable already, and a writer of one update every millisecond or so
   * (an app typing, a mesh relaying) would otherwise cost a LevelDB batch and an emptying of
   * the file per update, on the main thread, in the gaps a peer's next update needs.
   */
  private kickSoon(): void {
    if (this.running !== undefined || this.behindTimer !== undefined) return
    this.behindTimer = setTimeout(() => this.kick(), WRITE_BEHIND_MS)
    this.behindTimer.unref()
  }

  private kick(): void {
    if (this.behindTimer !== undefined) clearTimeout(this.behindTimer)
    this.behindTimer = undefined
    if (this.running !== undefined) return
    void this.exclusive(() => this.drain())
  }

  /**
   * Run `work` in the writer's place (the caller checked it is free): no batch or compaction
   * starts until it is done, and whatever was queued meanwhile is written after it.
   */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = work()
    this.running = result.then(
      () => undefined,
      () => undefined,
    )
    void this.running.then(() => {
      this.running = undefined
      if (this.pending.length > 0 || this.compactRequested) this.kick()
    })
    return result
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0 || this.compactRequested) {
      // A requested compaction goes before the next batch, or a steady stream of writers
      // would keep it waiting forever while the log grows.
      if (this.pending.length > 0 && !this.compactRequested) {
        const batch = this.pending
        this.pending = []
        try {
          await this.writeAppends(batch)
          for (const p of batch) p.resolve()
        } catch (err) {
          this.fail(err, batch)
          return
        }
        this.checkCompaction()
        continue
      }
      this.compactRequested = false
      try {
        await this.writeCompaction()
      } catch (err) {
        this.fail(err, [])
        return
      }
    }
  }

  private async writeAppends(batch: PendingAppend[]): Promise<void> {
    const ops: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = []
    if (!this.exists) {
      const meta: CollectionMeta = { kind: 'records', createdAt: this.store.now() }
      ops.push({ type: 'put', key: metaKey(this.name), value: frame(encoder.encode(JSON.stringify(meta))) })
      // A snapshot without metadata is what an interrupted adoption left (see adopt): not this collection's.
      ops.push({ type: 'del', key: snapshotKey(this.name) })
    }
    const only = batch.length === 1 ? (batch[0] as PendingAppend) : undefined
    if (only !== undefined && this.storedAsSnapshot(only.update)) {
      // The first, large update of an empty collection (a device copying a workspace) is the
      // whole state: store it as the snapshot at once instead of logging it and re-encoding it.
      const meta = ops.filter((op) => op.type === 'put')
      const snap = only.kept === undefined ? await this.store.snapshotValue(this.name, only.update) : await this.writeAdopted(only, meta)
      if (only.kept === undefined) await this.store.batch([...meta, { type: 'put', key: snapshotKey(this.name), value: snap.value }])
      if (only.logged) this.store.wal?.settled(1)
      this.exists = true
      this.snapshotFile = snap.file?.file
      this.state.snapshotBytes = snap.bytes
      return
    }
    let seq = this.lastSeq
    let bytes = 0
    for (const p of batch) {
      const value = frame(p.update)
      bytes += value.byteLength
      ops.push({ type: 'put', key: updateKey(this.name, ++seq), value })
    }
    await this.store.batch(ops)
    const logged = batch.reduce((n, p) => (p.logged ? n + 1 : n), 0)
    if (logged > 0) this.store.wal?.settled(logged)
    this.exists = true
    this.lastSeq = seq
    if (this.state.logEntries === 0) this.state.oldestEntryAt = this.store.now()
    this.state.logEntries += batch.length
    this.state.logBytes += bytes
  }

  /**
   * Store an adopted copy (see adopt) as the snapshot once its owner keeps it, with `meta`:
   * its file (already being written) is referenced, or its framed bytes were put before.
   */
  private async writeAdopted(entry: PendingAppend, meta: { type: 'put'; key: string; value: Uint8Array }[]): Promise<StoredSnapshot> {
    const key = snapshotKey(this.name)
    const notKept = (): KitsyncError =>
      new KitsyncError('PROTOCOL_ERROR', `collection ${this.name}: the copy taken from a peer was not kept`, { details: { collection: this.name } })
    if (entry.file !== undefined) {
      const { ref, done } = entry.file
      try {
        await done
        if (!(await entry.kept)) throw notKept()
      } catch (err) {
        await this.store.files?.remove(ref.file).catch(() => undefined)
        throw err
      }
      const snap = storedFile(ref)
      await this.store.batch([...meta, { type: 'put', key, value: snap.value }])
      return snap
    }
    const value = frame(entry.update)
    await this.store.batch([{ type: 'put', key, value }])
    if (!(await entry.kept)) {
      await this.store.batch([{ type: 'del', key }])
      throw notKept()
    }
    await this.store.batch(meta)
    return { value, bytes: value.byteLength }
  }

  private async writeCompaction(): Promise<void> {
    if (this.state.logEntries === 0) return
    const update = this.snapshot()
    const snap = await this.store.snapshotValue(this.name, update)
    // Sequence numbers are contiguous, so the log entries this snapshot covers are known
    // without a scan, and the whole swap is one atomic batch.
    const first = this.lastSeq - this.state.logEntries + 1
    const ops: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = [
      { type: 'put', key: snapshotKey(this.name), value: snap.value },
      { type: 'del', key: vectorKey(this.name) },
    ]
    for (let seq = first; seq <= this.lastSeq; seq++) ops.push({ type: 'del', key: updateKey(this.name, seq) })
    const replaced = this.snapshotFile
    // A file the old snapshot is in goes only once LevelDB has the new one on disk (synced): a
    // power cut must not leave the old reference pointing at nothing.
    try {
      await this.store.batch(ops, replaced === undefined ? {} : { sync: true })
    } catch (err) {
      if (snap.file !== undefined) await this.store.files?.remove(snap.file.file).catch(() => undefined)
      throw err
    }
    this.snapshotFile = snap.file?.file
    if (replaced !== undefined && replaced !== this.snapshotFile) await this.store.files?.remove(replaced).catch(() => undefined)
    // Let LevelDB drop the deleted entries from its files now rather than whenever its own
    // compaction gets there, so the store stays close to the size of the snapshot.
    const db = this.store.db as BinaryLevel & { compactRange?: (start: string, end: string) => Promise<void> }
    if (typeof db.compactRange === 'function') void db.compactRange(updatePrefix(this.name), updateKey(this.name, this.lastSeq)).catch(() => undefined)
    this.state.snapshotBytes = snap.bytes
    this.state.logBytes = 0
    this.state.logEntries = 0
    this.state.oldestEntryAt = undefined
  }

  private fail(err: unknown, batch: PendingAppend[]): void {
    const error =
      err instanceof KitsyncError
        ? err
        : new KitsyncError('STORAGE_FAILED', `collection ${this.name}: write failed: ${(err as Error).message}`, {
            cause: err,
            details: { collection: this.name },
          })
    // After a failed write the in-memory document is ahead of the disk: refuse further
    // writes so the owner reloads the collection from what is actually stored.
    this.failure = error
    const lost = [...batch, ...this.pending]
    // Acknowledged from the write-ahead file: durable there, LevelDB gets them when the collection reopens.
    this.store.strand(this.name, lost.reduce((n, p) => (p.logged ? n + 1 : n), 0))
    for (const p of lost) p.reject(error)
    this.pending = []
    this.compactRequested = false
  }

  get failed(): KitsyncError | undefined {
    return this.failure
  }
}
