import { compactionDue, type LogState } from '../core/compaction-policy.js'
import { KitsyncError } from '../core/errors.js'
import { storeAdopted, type Adoption } from './adoption.js'
import { checkpointed, rowBatches, type RowSource } from './derived-count.js'
import {
  jsonValue,
  metaKey,
  newMeta,
  snapshotKey,
  updateKey,
  updatePrefix,
  vectorKey,
  type BatchOp,
  type Checkpoint,
  type StoredSnapshot,
} from './doc-layout.js'
import { frame } from './framing.js'
import { storageFailure } from './level-errors.js'
import { compactHint } from './level.js'
import type { LogStore } from './log-store.js'
import { noop, Room, waitFor, type PendingAppend } from './pending-append.js'
import { WalSequence } from './wal-sequence.js'

type Rows = ReturnType<RowSource['take']>

/** How long appends already in the write-ahead file wait for others before going to LevelDB. */
const WRITE_BEHIND_MS = 10
/** A collection stored in fewer bytes is sent from its document, not its store (see CollectionLog.storedState). */
const STORED_STATE_MIN_BYTES = 64 * 1024
/** A log longer than this is not sent entry by entry (see CollectionLog.storedState). */
const MAX_STORED_ENTRIES = 256

/**
 * The persisted update log of one collection. Appends are written in atomic batches; appends
 * that arrive while a batch is being written go together into the next one (group commit).
 * A promise returned by `append` resolves once LevelDB has the update in its write-ahead
 * log, which survives the process being killed.
 */
export class CollectionLog {
  readonly name: string
  private readonly store: LogStore
  private readonly snapshot: () => Uint8Array
  private exists: boolean
  /** The file the stored snapshot is in, if it is in one (see SnapshotFiles). */
  private snapshotFile: string | undefined
  private lastSeq: number
  /** Seqs and rows of the records of the write-ahead file (see append). */
  private readonly walSeq: WalSequence
  /** The records counted in the checkpoint (see append); undefined while no rows are derived. */
  private records: number | undefined
  /** The read rules the rows are derived under (see Checkpoint.rules). */
  private rules: string | undefined
  private readonly state: LogState
  private pending: PendingAppend[] = []
  private readonly room = new Room() // writers waiting for a batch to take the appends queued (see waitFor)
  /** Ops the next append writes in its batch, past the write-ahead file, then clears (units with their records: daemon/workspace-units.ts). */
  carried: BatchOp[] | undefined
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
  private compactions = 0
  private failure: KitsyncError | undefined
  /** The collection's record layout, written into its metadata with the first append (set by its owner once known). */
  layout: number | undefined
  private source: RowSource | undefined
  private building: Promise<void> | undefined

  constructor(
    store: LogStore,
    name: string,
    snapshot: () => Uint8Array,
    init: { exists: boolean; snapshotFile?: string; lastSeq: number; state: LogState; records?: number; rules?: string },
  ) {
    this.store = store
    this.name = name
    this.snapshot = snapshot
    this.exists = init.exists
    this.snapshotFile = init.snapshotFile
    this.lastSeq = init.lastSeq
    this.walSeq = new WalSequence(init.lastSeq)
    this.records = init.records
    this.rules = init.rules
    this.state = init.state
  }

  /** The checkpoint the stored rows have (see append), if rows are derived for this collection. */
  checkpoint(): Checkpoint | undefined {
    return this.records === undefined ? undefined : { seq: this.lastSeq, records: this.records, ...(this.rules === undefined ? {} : { rules: this.rules }) }
  }

  /** The read rules the rows of the appends to come are derived under (see Checkpoint.rules). */
  deriveUnder = (rules: string): void => void (this.rules = rules)

  /** Take the rows of appends (and the record count) from `source` as each batch or compaction is put together (see RowSource). */
  rowsFrom = (source: RowSource): void => void (this.source = source)

  /** A build of every row (written through writeRows) runs in the background until `build` settles: a flush waits for it. */
  buildingRows(build: Promise<void>): void {
    const done: Promise<void> = (this.building = build.finally(() => void (this.building === done && (this.building = undefined))))
  }

  /** Sizes for `list` and `status`; compactions written since this log was opened (for /metrics). */
  stats(): { bytes: number; logEntries: number; snapshotBytes: number; compactions: number } {
    const { snapshotBytes, logBytes, logEntries } = this.state
    return { bytes: snapshotBytes + logBytes, logEntries, snapshotBytes, compactions: this.compactions }
  }

  /**
   * Append an update. `derived`: the rows derived from it (daemon/derived-rows.ts), written in
   * the same LevelDB batch, with the checkpoint `n!NAME` (its seq, the record count after it):
   * a crash leaves both or neither. Its record in the write-ahead file has its seq and the rows
   * so far (but with `rowsLater`: see WalSequence.log), so after a crash they are stored without
   * loading the document (DocStore.recover); rows that missed the file are derived at the next load.
   */
  append(update: Uint8Array, derived?: BatchOp[], rowsLater = false): Promise<void> {
    const extra = this.carried
    this.carried = undefined
    if (this.failure !== undefined) return Promise.reject(this.failure)
    this.lastAppendAt = this.store.now()
    const wal = this.store.wal
    if (wal !== undefined && !this.isWholeState(update) && extra === undefined) {
      let logged: { seq: number; ops: BatchOp[] | undefined }
      try {
        logged = this.walSeq.log(wal, this.name, update, derived, { rowsLater, source: this.source, counted: this.records !== undefined })
      } catch (err) {
        // The document now holds an update the disk does not: this log takes no more (its owner reloads
        // the collection); what is queued still goes to LevelDB, with no checkpoint (rows taken for it are gone).
        this.failure = err as KitsyncError
        this.records = undefined
        return Promise.reject(err)
      }
      // Durable now; LevelDB follows in a batch (see waitFor). An update behind one that skipped the write-ahead file is durable only with it.
      const { seq, ops } = logged
      const wait = waitFor(this.pending.length + 1, wal.records)
      const written = new Promise<void>((resolve, reject) => {
        this.pending.push({ update, seq, logged: true, resolve, reject: wait === 'written' ? reject : noop, ...(ops === undefined ? {} : { derived: ops }) })
      })
      this[wait === 'none' ? 'kickSoon' : 'kick']()
      if (wait === 'written') return written
      return wait === 'room' ? Promise.all([this.room.wait(), this.unlogged]).then(noop) : (this.unlogged ?? Promise.resolve())
    }
    return this.writeUnlogged({ update, ...(derived === undefined ? {} : { derived }), ...(extra === undefined ? {} : { extra }) })
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
    const fallback: Adoption = { keep: (derived) => this.append(update, derived), drop: async () => undefined }
    if (this.failure !== undefined || this.exists || !this.isWholeState(update)) return fallback
    const file = this.store.files?.wants(this.name, update.byteLength) === true ? await this.store.beginFile(this.name, update) : undefined
    // Nothing else can have been queued meanwhile: the log is new and only its owner has it.
    if (!this.isWholeState(update)) {
      if (file !== undefined) void file.done.then(() => this.store.files?.remove(file.ref.file)).catch(() => undefined) // the sweep at the next start removes what is left
      return fallback
    }
    this.lastAppendAt = this.store.now()
    let decide: (keep: boolean) => void = () => undefined
    const kept = new Promise<boolean>((resolve) => {
      decide = resolve
    })
    const entry: Pick<PendingAppend, 'update' | 'kept' | 'file' | 'derived'> = { update, kept, ...(file === undefined ? {} : { file }) }
    const written = this.writeUnlogged(entry)
    // Handled by whoever keeps it; a dropped copy's failure is expected.
    written.catch(() => undefined)
    return {
      keep: (derived) => {
        if (derived !== undefined) entry.derived = derived
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
  private writeUnlogged(append: Pick<PendingAppend, 'update' | 'kept' | 'file' | 'derived' | 'extra'>): Promise<void> {
    const written = new Promise<void>((resolve, reject) => {
      // The caller's object is queued itself: an adopted copy's rows are set on it once kept (see adopt).
      this.pending.push(Object.assign(append, { seq: this.walSeq.next++, logged: false, resolve, reject }))
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
    while (this.building !== undefined) await this.building
    if (this.behindTimer !== undefined) this.kick()
    while (this.running !== undefined) await this.running
  }

  private requestCompaction(): void {
    this.compactRequested = true
    this.kick()
  }

  /**
   * Write what the write-ahead file holds (durable already) to LevelDB a little later, with
   * whatever comes meanwhile: a writer of an update every millisecond or so (an app typing, a
   * mesh relaying) would otherwise cost a batch and an emptying of the file per update.
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
    // A microtask later: an append kicks from inside an 'update' event, where a transaction an observer started is not appended yet (see RowSource).
    void this.exclusive(() => Promise.resolve().then(() => this.drain()))
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
        this.room.open()
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
    const later = this.rowsNow() // at once: the document holds exactly the updates appended so far (see RowSource)
    const ops: BatchOp[] = []
    if (!this.exists) {
      ops.push({ type: 'put', key: metaKey(this.name), value: jsonValue(newMeta(this.store.now(), this.layout)) })
      // A snapshot without metadata is what an interrupted adoption left (see adopt): not this collection's.
      ops.push({ type: 'del', key: snapshotKey(this.name) })
    }
    const only = batch.length === 1 ? (batch[0] as PendingAppend) : undefined
    if (only !== undefined && this.storedAsSnapshot(only.update)) {
      // The first, large update of an empty collection (a device copying a workspace) is the
      // whole state: store it as the snapshot at once instead of logging it and re-encoding it.
      const meta = ops.filter((op) => op.type === 'put')
      // An adopted copy's rows are known only once its owner keeps it (see adopt). (A failed batch fails the log.)
      const withRows = async (): Promise<BatchOp[]> => {
        const rows = await this.derivedOps(batch, only.seq, later)
        this.records = rows.records
        return [...meta, ...rows.ops, ...(only.extra ?? [])]
      }
      this.lastSeq = only.seq // (used up: the appends queued after it have theirs in the write-ahead file)
      let snap: StoredSnapshot
      if (only.kept === undefined) {
        snap = await this.store.snapshotValue(this.name, only.update)
        await this.store.batch([...(await withRows()), { type: 'put', key: snapshotKey(this.name), value: snap.value }])
      } else snap = await storeAdopted(this.store, this.name, { update: only.update, kept: only.kept, file: only.file }, withRows)
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
      if (p.seq !== ++seq) throw new KitsyncError('STORAGE_FAILED', `collection ${this.name}: append ${p.seq} queued out of order (seqs go on from ${seq})`)
      ops.push({ type: 'put', key: updateKey(this.name, seq), value })
    }
    const rows = await this.derivedOps(batch, seq, later)
    // (Not push(...rows.ops): a transaction of many records derives more rows than a call takes arguments.)
    for (const op of rows.ops) ops.push(op)
    for (const p of batch) if (p.extra !== undefined) for (const op of p.extra) ops.push(op)
    await this.store.batch(ops)
    this.records = rows.records
    const logged = batch.reduce((n, p) => (p.logged ? n + 1 : n), 0)
    if (logged > 0) this.store.wal?.settled(logged)
    this.exists = true
    this.lastSeq = seq
    if (this.state.logEntries === 0) this.state.oldestEntryAt = this.store.now()
    this.state.logEntries += batch.length
    this.state.logBytes += bytes
  }

  private rowsNow = (): Rows | undefined => this.walSeq.batchRows(this.source, this.store.wal, this.name, this.records !== undefined, this.lastSeq)

  /** The rows derived from `batch`, with the checkpoint at `seq` (see checkpointed). */
  private derivedOps(batch: PendingAppend[], seq: number, later: Rows | undefined): Promise<{ ops: BatchOp[]; records: number | undefined }> {
    return checkpointed(this.store, this.name, batch, { seq, records: this.records, rules: this.rules, exists: this.exists }, later)
  }

  /**
   * Write rows derived outside appends (updates re-applied after a crash, a build of every
   * row; see daemon/derived-rows.ts) in one batch, made by `rows` in the writer's place (no
   * append lands in between). With `checkpoint` the rows then reflect the whole log; without,
   * the checkpoint is removed, and appends write none until a batch with one (a build's last)
   * is written (see checkpointed). The count and rules change before the place is free.
   */
  async writeRows(rows: () => { ops: BatchOp[]; checkpoint: { records: number; rules: string } | undefined }): Promise<void> {
    while (this.running !== undefined) await this.running
    if (this.failure !== undefined) throw this.failure
    await this.exclusive(async () => {
      const { ops, checkpoint } = rows()
      // After a failure (of several slices, the first removed the checkpoint) appends write none until the next load.
      this.records = undefined
      for (const slice of rowBatches(this.name, ops, checkpoint === undefined ? undefined : { seq: this.lastSeq, ...checkpoint }))
        await this.store.batch(slice).catch((err: unknown) => {
          throw storageFailure(this.name, 'cannot write its derived rows', err)
        })
      this.records = checkpoint?.records
      if (checkpoint !== undefined) this.rules = checkpoint.rules
    })
  }

  private async writeCompaction(): Promise<void> {
    if (this.state.logEntries === 0) return
    const update = this.snapshot()
    // The snapshot holds the updates still queued: their rows go with it. The checkpoint stays at the log's end.
    const queued = this.pending.slice()
    const later = this.rowsNow()
    const snap = await this.store.snapshotValue(this.name, update)
    const rows = await this.derivedOps(queued, this.lastSeq, later)
    // Sequence numbers are contiguous, so the log entries this snapshot covers are known
    // without a scan, and the whole swap is one atomic batch.
    const first = this.lastSeq - this.state.logEntries + 1
    const ops: BatchOp[] = [{ type: 'put', key: snapshotKey(this.name), value: snap.value }, { type: 'del', key: vectorKey(this.name) }, ...rows.ops]
    for (let seq = first; seq <= this.lastSeq; seq++) ops.push({ type: 'del', key: updateKey(this.name, seq) })
    const replaced = this.snapshotFile
    // A file the old snapshot is in goes only once LevelDB has the new one on disk (synced): a
    // power cut must not leave the old reference pointing at nothing.
    try {
      await this.store.batch(ops, replaced === undefined ? {} : { sync: true })
    } catch (err) {
      if (snap.file !== undefined) await this.store.files?.remove(snap.file.file).catch(() => undefined) // swept at the next start
      throw err
    }
    this.records = rows.records
    this.snapshotFile = snap.file?.file
    if (replaced !== undefined && replaced !== this.snapshotFile) await this.store.files?.remove(replaced).catch(() => undefined) // swept at the next start
    compactHint(this.store.db, updatePrefix(this.name), updateKey(this.name, this.lastSeq))
    this.state.snapshotBytes = snap.bytes
    this.state.logBytes = 0
    this.state.logEntries = 0
    this.state.oldestEntryAt = undefined
    this.compactions++
  }

  private fail(err: unknown, batch: PendingAppend[]): void {
    const error = err instanceof KitsyncError ? err : storageFailure(this.name, 'write failed', err)
    // After a failed write the in-memory document is ahead of the disk: refuse further
    // writes so the owner reloads the collection from what is actually stored.
    this.failure = error
    const lost = [...batch, ...this.pending]
    // Acknowledged from the write-ahead file: durable there, LevelDB gets them when the collection reopens.
    const logged = lost.filter((p) => p.logged).length
    this.store.strand(this.name, logged)
    for (const p of lost) p.reject(error)
    this.pending = []
    this.room.open() // their appends are in the write-ahead file (acknowledged); the next one is refused
    this.compactRequested = false
  }

  get failed(): KitsyncError | undefined {
    return this.failure
  }
}
