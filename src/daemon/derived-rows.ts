import * as Y from 'yjs'
import { KitsyncError } from '../core/errors.js'
import { lazyChanges, type RecordChange } from '../core/record-changes.js'
import type { RecordCollection } from '../core/record-collection.js'
import type { CollectionLog } from '../store/collection-log.js'
import type { RowSource } from '../store/derived-count.js'
import type { BatchOp } from '../store/doc-layout.js'
import { storedRowKeys } from '../store/record-rows.js'
import type { BinaryLevel } from '../store/level.js'

/**
 * Rows derived from a collection's records (the index, a record's history): LevelDB ops
 * written in the same atomic batch as the update they come from, so they never drift from the
 * data after a crash (the lesson of Syncthing's hand-kept indexes). `derive` is called right
 * after each transaction of a loaded app collection that changed records, before the
 * transaction's update is appended to the log (see CollectionRegistry), and again, with the
 * origins below, when rows are built anew at a collection's open. It must not write to the
 * document, and reads the records only through RecordCollection's public API.
 */
export interface DerivedRows {
  derive(name: string, collection: RecordCollection, changes: readonly RecordChange[], origin: unknown): BatchOp[]
  /**
   * For the appends of one collection: a collector that notes each transaction's changes and
   * makes their rows only when their batch is put together (see appendWithRows). Without one,
   * each transaction's rows are derived at once.
   */
  collector?(name: string, collection: RecordCollection): RowCollector
  /** Whether it derives rows of this internal (`_`) collection too (none are derived for them otherwise). */
  internal?(name: string): boolean
}

/** What a deriver keeps of one collection's transactions until their batch is written. */
export interface RowCollector {
  /** Right after each transaction: note what cannot wait (a version whose slots a later transaction may replace). */
  add(changes: readonly RecordChange[], origin: unknown): void
  /** The ops of everything noted since the last call, for the records as they read now (see store/derived-count.ts RowSource). */
  take(): BatchOp[]
}

/** Origin of the changes of updates re-applied at open: acknowledged, but stored without their rows (a crash, a full disk). */
export const REPLAY_ORIGIN = Symbol('kitsync:replay')
/** Origin of the changes of a build of every row from the whole collection (a store written before rows were, a damaged checkpoint, `check --repair`). */
export const REBUILD_ORIGIN = Symbol('kitsync:rebuild')

/** Records per batch of a build, between which the event loop runs (about 10 ms of work each). */
const BUILD_CHUNK = 2000

/**
 * The read rules of a collection as its checkpoint records them (Checkpoint.rules): a record's
 * value depends on its collection's policy and field types, so rows derived under other rules
 * (settings changed while the collection was not loaded here) are built anew.
 */
export function rulesOf(collection: { policy: string; fieldTypes: Record<string, string> }): string {
  const types = Object.entries(collection.fieldTypes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return JSON.stringify([collection.policy, types])
}

/** The ops every deriver returns for one transaction's changes, in the derivers' order. */
export function deriveAll(
  derivers: readonly DerivedRows[],
  name: string,
  collection: RecordCollection,
  changes: readonly RecordChange[],
  origin: unknown,
): BatchOp[] {
  if (derivers.length === 1) return (derivers[0] as DerivedRows).derive(name, collection, changes, origin)
  const ops: BatchOp[] = []
  for (const d of derivers) for (const op of d.derive(name, collection, changes, origin)) ops.push(op)
  return ops
}

/**
 * Apply the updates logged after the checkpoint, one transaction each as they first came, and
 * write the rows derived from them with a new checkpoint in one batch. An update the document
 * holds already (the snapshot of a compaction holds the updates queued when it ran, and wrote
 * their rows) changes nothing and derives nothing.
 */
export async function replayRows(
  derivers: readonly DerivedRows[],
  collection: RecordCollection,
  log: CollectionLog,
  updates: Uint8Array[],
  rules: string,
): Promise<void> {
  const name = collection.name
  const ops: BatchOp[] = []
  const stop = collection.onChange((changes) => {
    for (const op of deriveAll(derivers, name, collection, changes, REPLAY_ORIGIN)) ops.push(op)
  })
  try {
    for (const update of updates) applyStored(collection, [update])
  } finally {
    stop()
  }
  await log.writeRows(() => ({ ops, checkpoint: { records: collection.size, rules } }))
}

/** Apply stored updates to a collection's document (as one transaction, origin REPLAY_ORIGIN); DATA_CORRUPTION if they do not apply. */
export function applyStored(collection: RecordCollection, updates: Uint8Array[]): void {
  if (updates.length === 0) return
  try {
    collection.doc.transact(() => {
      for (const update of updates) Y.applyUpdate(collection.doc, update, REPLAY_ORIGIN)
    }, REPLAY_ORIGIN)
  } catch (err) {
    throw new KitsyncError('DATA_CORRUPTION', `collection ${collection.name}: stored updates cannot be applied; the stored data was left as it is`, {
      details: { collection: collection.name },
      cause: err,
    })
  }
}

/**
 * Build every row from the whole collection: each record is derived as changed, and each
 * stored index row of a record the collection does not hold is derived as deleted. A batch of
 * some thousand records at a time, the event loop running between them; the first batch
 * removes the checkpoint and the last writes it, so a build cut short is run again at the next
 * open.
 */
export async function buildRows(
  derivers: readonly DerivedRows[],
  collection: RecordCollection,
  log: CollectionLog,
  db: BinaryLevel,
  rules: string,
): Promise<void> {
  const name = collection.name
  const keys = collection.keys()
  for (const key of await storedRowKeys(db, name)) if (!collection.has(key)) keys.push(key)
  for (let i = 0; ; i += BUILD_CHUNK) {
    const chunk = keys.slice(i, i + BUILD_CHUNK)
    const last = i + BUILD_CHUNK >= keys.length
    // Derived in the writer's place: an append of a newer version written in between would be overwritten.
    await log.writeRows(() => ({
      ops: chunk.length === 0 ? [] : deriveAll(derivers, name, collection, lazyChanges(collection, chunk, REBUILD_ORIGIN), REBUILD_ORIGIN),
      checkpoint: last ? { records: collection.size, rules } : undefined,
    }))
    if (last) return
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}

/**
 * The rows of a collection adopted whole from a peer (every record new here), to be written
 * once the copy is stored: what cannot wait (the versions the copy brings, which a write
 * landing before the rows would replace) is read now, the rows are made by the returned
 * function (see CollectionLog.writeRows), with the records as they read then.
 */
export function adoptedRows(derivers: readonly DerivedRows[], collection: RecordCollection, origin: unknown): () => BatchOp[] {
  const collectors = derivers.map((d) => d.collector?.(collection.name, collection) ?? deriveNow(d, collection))
  const changes = lazyChanges(collection, collection.keys(), origin)
  for (const c of collectors) c.add(changes, origin)
  return () => collectedRows(collection, collectors).take().ops
}

/** A collector for a deriver without one: its rows are derived as changes are added. */
function deriveNow(deriver: DerivedRows, collection: RecordCollection): RowCollector {
  let ops: BatchOp[] = []
  return {
    add(changes, origin) {
      for (const op of deriver.derive(collection.name, collection, changes, origin)) ops.push(op)
    },
    take() {
      const out = ops
      ops = []
      return out
    },
  }
}

/**
 * Hand each transaction's update of `doc` to `append` with the rows `derivers` make of its
 * record changes (none without derivers), for one LevelDB batch. The rows of derivers with a
 * collector are made when the batch is put together: `log` takes them then (see RowSource).
 */
export function appendWithRows(
  doc: Y.Doc,
  collection: RecordCollection,
  derivers: readonly DerivedRows[],
  log: Pick<CollectionLog, 'rowsFrom'>,
  append: (update: Uint8Array, ops?: BatchOp[]) => void,
): void {
  if (derivers.length === 0) {
    doc.on('update', (update: Uint8Array) => append(update))
    return
  }
  const collectors: RowCollector[] = []
  const eager: DerivedRows[] = []
  for (const d of derivers) {
    if (d.collector === undefined) eager.push(d)
    else collectors.push(d.collector(collection.name, collection))
  }
  if (collectors.length > 0) log.rowsFrom(collectedRows(collection, collectors))
  // The rows of a transaction go with its update. Yjs runs a transaction's observers (the
  // collection's, which emits its changes) and then emits its 'update', before it runs the
  // cleanup of any transaction an observer started ('beforeObserverCalls' opens each
  // transaction's turn): so the ops collected between 'beforeObserverCalls' and 'update'
  // are this transaction's, never another's. They are derived (or noted) at once, from the
  // first change listener (before any app listener can write), so they hold the records as
  // this transaction left them.
  let derived: BatchOp[] | undefined
  doc.on('beforeObserverCalls', () => {
    derived = undefined
  })
  collection.onChange((changes) => {
    const origin = changes[0]?.origin
    for (const c of collectors) c.add(changes, origin)
    if (eager.length === 0) return
    const ops = deriveAll(eager, collection.name, collection, changes, origin)
    derived = derived === undefined ? ops : derived.concat(ops)
  })
  doc.on('update', (update: Uint8Array) => {
    const ops = derived ?? []
    derived = undefined
    append(update, ops)
  })
}

/** The rows of `collectors` and the record count, as one RowSource. */
function collectedRows(collection: RecordCollection, collectors: readonly RowCollector[]): RowSource {
  return {
    take() {
      if (collectors.length === 1) return { ops: (collectors[0] as RowCollector).take(), records: collection.size }
      const ops: BatchOp[] = []
      for (const c of collectors) for (const op of c.take()) ops.push(op)
      return { ops, records: collection.size }
    },
  }
}
