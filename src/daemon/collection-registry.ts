import * as Y from 'yjs'
import { isKitsyncError, KitsyncError, toKitsyncError } from '../core/errors.js'
import type { Hlc } from '../core/hlc.js'
import type { EffectiveSettings } from '../core/kinds.js'
import { isInternalCollection } from '../core/membership.js'
import { assertCollectionName } from '../core/names.js'
import { RecordCollection, type RecordChange } from '../core/record-collection.js'
import { isRecordLayout } from '../core/record-layout.js'
import type { CollectionInfo, WorkspaceExport } from '../core/workspace-types.js'
import type { CollectionLog } from '../store/collection-log.js'
import type { DocStore } from '../store/doc-store.js'
import { debugLog } from '../core/debug-log.js'
import type { JsonValue } from '../core/json.js'
import { readRow, readRows, storedBytes, type RecordRow } from '../store/record-rows.js'
import { readableFromRows } from '../store/stored-check.js'
import { adoptedRows, appendWithRows, applyStored, buildRows, replayRows, rowsLeftToNextLoad, rulesOf, type DerivedRows } from './derived-rows.js'
import { IdleDocs, unloadIdle } from './idle-docs.js'

const log = debugLog('daemon:collections')
/** The debug log, under another name: inside loadFromStore `log` is the collection's CollectionLog. */
const warnLayout = log

/** Transaction origin of writes made through this workspace. */
export const LOCAL_ORIGIN = Symbol('kitsync:local')
/** Origin of the change events of a collection adopted from a peer (see adopt). */
const ADOPTED_ORIGIN = Symbol('kitsync:adopted')

/** Stands for the collections LevelDB could not list (a damaged block) in `list` and `export` (no collection has this name). */
const UNLISTED = '(unlisted)'

import type { LoadedCollection, RegistryHooks } from './registry-types.js'
export type { DocLoaded, LoadedCollection, RegistryHooks } from './registry-types.js'

export interface CollectionRegistryOptions {
  store: DocStore
  clock: Hlc
  /** The stored collections when the workspace opened. */
  known: string[]
  maxRecordBytes?: number | undefined
  hooks: RegistryHooks
  /** What is derived from each app collection's records, in the batch of each update (see derived-rows.ts). */
  derivers?: readonly DerivedRows[]
  /** Idle time after which an app collection's document is dropped from memory (see idle-docs.ts); 0: never. */
  unloadIdleMs?: number | undefined
}

/**
 * The collections of a workspace: which exist (stored, or created in this process), and the
 * loaded ones, each a Y.Doc whose every update (local or merged from a peer) is appended to
 * the store.
 */
export class CollectionRegistry {
  readonly store: DocStore
  private readonly clock: Hlc
  private readonly maxRecordBytes: number | undefined
  private readonly hooks: RegistryHooks
  private readonly derivers: readonly DerivedRows[]
  private readonly loaded = new Map<string, Promise<LoadedCollection>>()
  /** The collections of `loaded` whose load finished, for the synchronous path of the write queue. */
  private readonly ready = new Map<string, LoadedCollection>()
  private readonly known = new Set<string>()
  /** Collections whose load was started in this process: read from their document from then on (see forRead). */
  private readonly loadedOnce = new Set<string>()
  /** Collections whose stored rows were found to reflect their whole log (see forRead). */
  private readonly rowsChecked = new Set<string>()
  readonly idle: IdleDocs // drops idle documents

  constructor(options: CollectionRegistryOptions) {
    this.store = options.store
    this.clock = options.clock
    this.maxRecordBytes = options.maxRecordBytes
    this.hooks = options.hooks
    this.derivers = options.derivers ?? []
    for (const name of options.known) this.known.add(name)
    this.idle = new IdleDocs({ idleMs: options.unloadIdleMs, unload: (name, stillIdle) => unloadIdle(this, name, this.ready.get(name), stillIdle) })
  }

  /** Names of all collections, including kitsync's internal ones and ones not loaded yet. */
  names(): string[] {
    return [...this.known].sort()
  }

  /** The collections apps see (internal `_` collections left out). */
  appNames(): string[] {
    return this.names().filter((n) => !isInternalCollection(n))
  }

  /** Stored, or loaded in this process. */
  has(name: string): boolean {
    return this.known.has(name) || this.loaded.has(name)
  }

  /** Stored (or written to) by this device. */
  isKnown(name: string): boolean {
    return this.known.has(name)
  }

  /** The names of the known and the loaded collections. */
  present(): Set<string> {
    return new Set([...this.known, ...this.loaded.keys()])
  }

  /** The collection if its load finished. */
  readyEntry(name: string): LoadedCollection | undefined {
    return this.ready.get(name)
  }

  /** The collection's load, if it was started. */
  loading(name: string): Promise<LoadedCollection> | undefined {
    return this.loaded.get(name)
  }

  /** Every load started so far. */
  loads(): Promise<LoadedCollection>[] {
    return [...this.loaded.values()]
  }

  /** A collection that must exist (UNKNOWN_COLLECTION otherwise). */
  async existing(collection: string): Promise<LoadedCollection> {
    await this.assertExisting(collection)
    return this.load(collection)
  }

  /**
   * A collection that must exist, for reading: its loaded document, or undefined when its
   * stored index rows (store/record-rows.ts) answer instead, without loading anything. Rows
   * answer only for a collection that was never loaded in this process (a loaded document may
   * hold writes acknowledged from the write-ahead file that LevelDB has not yet, and one dropped
   * after a failed write left some only there) and whose rows reflect its whole log (not so
   * after a crash: loading it derives the missing rows first).
   */
  async forRead(collection: string): Promise<LoadedCollection | undefined> {
    await this.assertExisting(collection)
    if (this.loadedOnce.has(collection) || this.loaded.has(collection)) return this.load(collection)
    if (this.rowsChecked.has(collection)) return undefined
    if (!isInternalCollection(collection) && this.derivers.length > 0 && (await this.rowsReadable(collection))) {
      this.rowsChecked.add(collection)
      // Loaded meanwhile (a write): the document is ahead of the rows.
      return this.loaded.has(collection) ? this.load(collection) : undefined
    }
    return this.load(collection)
  }

  /** The stored rows reflect the whole log (see readableFromRows), under the collection's read rules now. */
  async rowsReadable(name: string): Promise<boolean> {
    // Side by side: the settings (the first read loads `_collections`) and the rows' checkpoint (handled if unused).
    const read = this.hooks.settingsOf(name)
    read.catch(() => undefined)
    const checkpoint = await readableFromRows(this.store.db, this.store.files, name)
    if (checkpoint === undefined) return false
    const settings = await read
    return checkpoint.rules === rulesOf({ policy: settings.policy, fieldTypes: { ...settings.kind.fieldTypes } })
  }

  /** UNKNOWN_COLLECTION unless the collection is stored or loaded. */
  private async assertExisting(collection: string): Promise<void> {
    this.hooks.assertOpen()
    assertCollectionName(collection)
    if (!this.known.has(collection)) {
      // A damaged block may hold the metadata that lists it: asked by name, it is looked up (and reported).
      if (this.store.namesDamage === undefined || !(await this.store.stored(collection))) {
        throw new KitsyncError('UNKNOWN_COLLECTION', `no collection named ${collection}`, { details: { collection } })
      }
      this.known.add(collection)
    }
  }

  /** Load a collection once; concurrent callers share the same promise. */
  load(name: string): Promise<LoadedCollection> {
    this.idle.used(name)
    let p = this.loaded.get(name)
    if (p === undefined) {
      this.loadedOnce.add(name)
      p = this.loadFromStore(name)
      this.loaded.set(name, p)
      // A collection that failed to load is tried again on next use (nothing is cached or deleted).
      p.catch(() => this.loaded.delete(name))
    }
    return p
  }

  /**
   * A collection this device does not hold yet, created from a peer's copy (the first sync of
   * a new device). The copy is applied before anything listens to the document and stored as
   * it came, so it is neither re-encoded nor observed record by record; change events are
   * still emitted for its records. Undefined when the collection exists or is being loaded:
   * the caller then applies the update as any other.
   */
  async adopt(name: string, update: Uint8Array): Promise<Y.Doc | undefined> {
    this.hooks.assertOpen()
    if (this.known.has(name) || this.loaded.has(name)) return undefined
    this.loadedOnce.add(name)
    const p = this.loadFromStore(name, update)
    this.loaded.set(name, p)
    p.catch(() => this.loaded.delete(name))
    return (await p).collection.doc
  }

  /** A line per app collection (`list`); one that cannot be read says why, and so does a damaged list of names. */
  async summaries(): Promise<CollectionInfo[]> {
    const out: CollectionInfo[] = []
    for (const name of this.appNames()) {
      try {
        let entry = await this.forRead(name)
        const settings = await this.hooks.settingsOf(name)
        // Open conflicts (`ask`) are kept in the document only.
        if (entry === undefined && settings.policy !== 'ask') {
          try {
            const checkpoint = await this.store.checkpoint(name)
            const bytes = await storedBytes(this.store.db, name)
            out.push({ name, records: checkpoint?.records ?? 0, bytes, kind: settings.kind.name, policy: settings.policy })
            continue
          } catch (err) {
            entry = await this.fromDocument(name, err)
          }
        }
        const { collection, log } = entry ?? (await this.load(name))
        const open = collection.openConflicts().length
        out.push({
          name,
          records: collection.size,
          bytes: log.stats().bytes,
          kind: settings.kind.name,
          policy: collection.policy,
          ...(open > 0 ? { openConflicts: open } : {}),
        })
      } catch (err) {
        const e = toKitsyncError(err)
        out.push({ name, records: 0, bytes: 0, error: { code: e.code, message: e.message } })
      }
    }
    const damage = this.store.namesDamage
    if (damage !== undefined) out.push({ name: UNLISTED, records: 0, bytes: 0, error: { code: damage.code, message: damage.message } })
    return out
  }

  /** The records of every app collection into an export, and the collections that could not be read. */
  async exportInto(result: Pick<WorkspaceExport, 'collections' | 'unreadable'>): Promise<void> {
    for (const name of this.appNames()) {
      try {
        result.collections[name] = await this.entries(name)
      } catch (err) {
        const e = toKitsyncError(err)
        result.unreadable.push({ collection: name, code: e.code, message: e.message })
      }
    }
    const damage = this.store.namesDamage
    if (damage !== undefined) result.unreadable.push({ collection: UNLISTED, code: damage.code, message: damage.message })
  }

  /** One record of a collection that must exist, from its document or its rows (see forRead). */
  async get(collection: string, key: string): Promise<JsonValue | undefined> {
    const entry = await this.forRead(collection)
    if (entry !== undefined) return entry.collection.get(key)
    try {
      return (await readRow(this.store.db, collection, key))?.v
    } catch (err) {
      return (await this.fromDocument(collection, err)).collection.get(key)
    }
  }

  /**
   * The rows could not be read (a damaged row, or a damaged LevelDB block on the way, which may
   * be another collection's): the document answers instead, as it did before there were rows.
   * `kitsync check` reports a damaged row; one of this collection's blocks fails its load too.
   */
  private async fromDocument(collection: string, err: unknown): Promise<LoadedCollection> {
    if (!isKitsyncError(err, 'DATA_CORRUPTION')) throw err
    log(`collection ${collection}: its index rows cannot be read; reading its document`, err)
    return this.load(collection)
  }

  /** Every record of a collection that must exist, by key, from its document or its rows (see forRead). */
  async entries(collection: string): Promise<Record<string, JsonValue>> {
    const entry = await this.forRead(collection)
    if (entry !== undefined) return entry.collection.entries()
    let rows: [string, RecordRow | undefined][]
    try {
      rows = await readRows(this.store.db, collection)
    } catch (err) {
      return (await this.fromDocument(collection, err)).collection.entries()
    }
    const out: Record<string, JsonValue> = {}
    for (const [key, row] of rows) {
      // `out.__proto__ = v` would set the prototype, not add the record `__proto__`.
      Object.defineProperty(out, key, { value: (row as RecordRow).v, enumerable: true, writable: true, configurable: true })
    }
    return out
  }

  /** Build a collection's derived rows anew from its records (`check --repair`; see buildRows). */
  async rebuildRows(name: string): Promise<void> {
    const entry = await this.existing(name)
    await entry.log.flush()
    await buildRows(this.derivers, entry.collection, entry.log, this.store.db, rulesOf(entry.collection))
  }

  /**
   * A loaded collection's read rules changed (its settings): its records may read differently
   * now, so its rows are built anew. (One not loaded is built when it next loads, or read from
   * its document until then: its checkpoint names the rules of its rows, see forRead.)
   */
  async rulesChanged(name: string): Promise<void> {
    // Not loaded: its rows are checked against the new rules at the next read.
    this.rowsChecked.delete(name)
    const entry = this.ready.get(name)
    if (entry === undefined || isInternalCollection(name) || this.derivers.length === 0) return
    const rules = rulesOf(entry.collection)
    if (entry.log.checkpoint()?.rules === rules) return
    await entry.log.flush()
    await buildRows(this.derivers, entry.collection, entry.log, this.store.db, rules)
  }

  /** Resolves when every update queued so far is durable. */
  async flush(): Promise<void> {
    for (const p of this.loads()) {
      const entry = await p.catch(() => undefined) // a collection that failed to load has nothing queued
      if (entry !== undefined) await entry.log.flush()
    }
  }

  /** A clean stop folds each log into its snapshot, so the next start reads one value per collection. */
  async close(): Promise<void> {
    this.idle.stop()
    for (const p of this.loads()) {
      const entry = await p.catch(() => undefined) // a collection that failed to load has nothing to fold
      // A compaction that fails at close leaves the log as it is: the next start reads it.
      if (entry !== undefined && entry.log.failed === undefined && entry.log.stats().logEntries > 0) {
        await entry.log.compactNow().catch((err: unknown) => log(`collection ${entry.collection.name}: compaction at close failed; the log stays`, err))
      }
      entry?.log.stop()
    }
  }

  /** The age trigger of compaction. */
  tick(): void {
    for (const p of this.loaded.values())
      void p.then(
        (entry) => entry.log.tick(),
        () => undefined,
      ) // failed loads are reported to whoever asked for them
  }

  private async loadFromStore(name: string, adopted?: Uint8Array): Promise<LoadedCollection> {
    const doc = new Y.Doc({ gc: true })
    const snapshot = (): Uint8Array => Y.encodeStateAsUpdate(doc)
    // Adopted: a collection this device does not know, so the store holds nothing of it.
    const { log, loaded } = adopted === undefined ? await this.store.open(name, snapshot, this.known.has(name)) : this.store.create(name, snapshot)
    // Read while the updates are applied (awaited below; the no-op keeps an early failure from counting as unhandled).
    const settings = this.hooks.settingsOf(name)
    settings.catch(() => undefined)
    // The workspace's record limit is for app data; kitsync's own collections keep the default.
    const internal = isInternalCollection(name)
    const derivers = internal ? this.derivers.filter((d) => d.internal?.(name) === true) : this.derivers
    try {
      // One transaction for the snapshot and the log: observers run once, and this is far
      // cheaper than Y.mergeUpdates, which slows down sharply with thousands of small updates.
      // (Updates after the checkpoint of the derived rows are re-applied below, deriving them.)
      doc.transact(() => {
        for (const update of loaded.updates) Y.applyUpdate(doc, update)
        if (derivers.length === 0) for (const update of loaded.replay) Y.applyUpdate(doc, update)
      })
    } catch (err) {
      throw new KitsyncError('DATA_CORRUPTION', `collection ${name}: stored updates cannot be applied; the stored data was left as it is`, {
        details: { collection: name },
        cause: err,
      })
    }
    let adoption: Awaited<ReturnType<CollectionLog['adopt']>> | undefined
    if (adopted !== undefined) {
      // The copy is written on another thread while it is applied here (a snapshot file, or
      // LevelDB); it becomes the collection on disk only if it applies (else it is removed).
      adoption = await log.adopt(adopted)
      try {
        Y.applyUpdate(doc, adopted)
      } catch (err) {
        await adoption.drop()
        throw new KitsyncError('PROTOCOL_ERROR', `malformed update for ${name}`, { details: { collection: name }, cause: err })
      }
    }
    const limit = internal ? undefined : this.maxRecordBytes
    let rules: EffectiveSettings
    try {
      rules = await settings
    } catch (err) {
      await adoption?.drop()
      throw err
    }
    const recorded = loaded.meta?.layout
    const collection = new RecordCollection(name, doc, {
      clock: this.clock,
      ...(isRecordLayout(recorded) ? { layout: recorded } : {}),
      policy: rules.policy,
      fieldTypes: { ...rules.kind.fieldTypes },
      ...(limit === undefined ? {} : { maxRecordBytes: limit }),
    })
    let adoptedWrite: Promise<void> | undefined
    const readRules = rulesOf(collection)
    if (derivers.length > 0) log.deriveUnder(readRules)
    if (adoption !== undefined) {
      // Stored without rows (so without a checkpoint: a crash before they are written has them
      // built at the next open); they are written right after, in the background, so the data
      // is there for the app first. Reads answer from the document meanwhile.
      const rows = derivers.length === 0 ? undefined : adoptedRows(derivers, collection, ADOPTED_ORIGIN)
      // (Handled below; the no-op keeps an early failure from counting as unhandled meanwhile.)
      adoptedWrite = adoption.keep()
      adoptedWrite.catch(() => undefined)
      if (rows !== undefined) {
        // A turn later: deriving the rows of a whole copy holds the event loop (10,000 records: some
        // 250 ms), and what waits on the copy (a join's catch-up, the app's first reads) goes first.
        const written = adoptedWrite
          .then(() => new Promise((resolve) => setImmediate(resolve)))
          .then(() => log.writeRows(() => ({ ops: rows(), checkpoint: { records: collection.size, rules: readRules } })))
        log.buildingRows(written.catch((err: unknown) => warnLayout(`collection ${name}: its rows were not written; they are built at its next load`, err)))
      }
    } else if (derivers.length > 0) {
      // Rows the store lacks are derived before the collection is handed out: updates
      // acknowledged but stored without them (a crash, a full disk) are re-applied one by one;
      // a collection stored before rows were (no checkpoint), or whose rows were derived under
      // other read rules (its settings changed while it was not loaded), gets them built anew.
      const unwritten = rowsLeftToNextLoad(name, warnLayout)
      if (loaded.meta !== undefined && (loaded.checkpoint === undefined || loaded.checkpoint.rules !== readRules)) {
        applyStored(collection, loaded.replay)
        await buildRows(derivers, collection, log, this.store.db, readRules).catch(unwritten)
      } else if (loaded.replay.length > 0) await replayRows(derivers, collection, log, loaded.replay, readRules).catch(unwritten)
    }
    if (!internal) {
      collection.onConflict((found) => this.hooks.conflicts(name, collection, found))
      collection.onConflictRecorded((open) => this.hooks.conflictRecorded(name, collection, open))
    }
    const entry: LoadedCollection = { collection, log, lastWrite: Promise.resolve() }
    // The sync engine (a doc-loaded listener) subscribes to the document's updates first, so peers are sent an
    // update before it is on disk here (no wait for the write-ahead file); its caller is answered once it is durable.
    this.hooks.docLoaded({ name, doc, ...(adopted === undefined ? {} : { adopted: true }) })
    const track = (write: Promise<void>): void => {
      entry.lastWrite = write
      this.known.add(name)
      // The document is now ahead of the disk: drop it so the next use reloads what is stored.
      write.catch(() => {
        if (this.loaded.get(name) !== undefined) this.loaded.delete(name)
        if (this.ready.get(name) === entry) this.ready.delete(name)
      })
    }
    if (adoptedWrite !== undefined) track(adoptedWrite)
    const reportMixed = (): void =>
      warnLayout(`collection ${name} holds records of both layouts (created apart on an old and a new device); only layout ${collection.layout} is read`)
    if (collection.mixedLayout(reportMixed)) reportMixed()
    // The layout is known by the first update (its first content decides it): the metadata records it.
    appendWithRows(doc, collection, derivers, log, (update, ops, rowsLater) => {
      this.idle.used(name)
      log.layout ??= collection.layout
      track(log.append(update, ops, rowsLater))
    })
    if (!isInternalCollection(name)) {
      collection.onChange((changes) => this.hooks.changes(name, changes))
      if (adopted !== undefined) {
        const changes: RecordChange[] = collection.keys().map((key) => ({
          key,
          origin: ADOPTED_ORIGIN,
          get value() {
            return collection.get(key)
          },
        }))
        if (changes.length > 0) this.hooks.changes(name, changes)
      }
    }
    this.ready.set(name, entry)
    if (!internal && derivers.length > 0) this.idle.loaded(name, doc)
    return entry
  }

  /** Forget a collection's document if `entry` is loaded (dropped while idle, see unloadIdle): reads come from its rows again once checked (see forRead). */
  forgetDoc(name: string, entry: LoadedCollection): boolean {
    if (this.ready.get(name) !== entry) return false
    for (const map of [this.loaded, this.ready, this.loadedOnce]) map.delete(name)
    return true
  }
}
