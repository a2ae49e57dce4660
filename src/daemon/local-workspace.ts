import * as Y from 'yjs'
import type { CompactionPolicy } from '../core/compaction-policy.js'
import { changeStream } from '../core/change-stream.js'
import { TypedEmitter } from '../core/emitter.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { assertJsonValue, isJsonObject, type JsonValue } from '../core/json.js'
import {
  AUDIT_COLLECTION,
  isInternalCollection,
  MEMBERS_COLLECTION,
  REVOKED_COLLECTION,
  toAuditEntry,
  toMember,
  toRevocation,
  toSelfRevocation,
  SELF_REVOKED_KEY,
  TRANSPORT_COLLECTIONS,
  type AuditEntry,
  type AuditType,
  type Member,
  type Revocation,
} from '../core/membership.js'
import { assertCollectionName, assertFieldName, assertRecordKey } from '../core/names.js'
import { RecordCollection, type RecordChange } from '../core/record-collection.js'
import type { DetectedConflict } from '../core/record-resolve.js'
import { Hlc, nodeTagOf } from '../core/hlc.js'
import {
  COLLECTIONS_COLLECTION,
  effectiveSettings,
  isConflictPolicy,
  isKindName,
  KINDS,
  LIMIT_NAMES,
  toCollectionSettings,
  type CollectionSettings,
  type EffectiveSettings,
} from '../core/kinds.js'
import { secretRuleError } from '../core/secrets.js'
import { resolveConflict, settleConflict } from '../core/conflicts.js'
import { KITSYNC_VERSION } from '../core/version.js'
import { WriteQueue } from './write-queue.js'
import type {
  AppendOptions,
  CollectionChange,
  CollectionSettingsView,
  ConflictView,
  ResolveChoice,
  ResolveResult,
  AuditEntryView,
  ChangeEvent,
  DeviceRecord,
  ChangesOptions,
  CollectionInfo,
  PeerState,
  SelfRevocation,
  SetOptions,
  Workspace,
  WorkspaceEvents,
  WorkspaceExport,
  WorkspaceInfo,
  WorkspaceStatus,
} from '../core/workspace-types.js'
import { deviceIdOf } from '../net/identity.js'
import type { CollectionLog } from '../store/collection-log.js'
import { DocStore } from '../store/doc-store.js'
import type { SyncHost } from '../sync/sync-host.js'
import { ensureHome, homePaths, initWorkspace, readWorkspaceConfig, writeWorkspaceConfig, type HomePaths } from '../store/home.js'
import { openHomeStore, type BinaryLevel } from '../store/level.js'
import { SnapshotFiles } from '../store/snapshot-files.js'
import { WriteAheadFile } from '../store/wal.js'
import { WorkspaceKeys } from '../store/key-file.js'
import type { InterestRule, ItemsChange } from '../core/selection.js'
import type { FetchResult, ItemsView, ResetReport, SyncNowReport, SyncStatsView } from '../core/sync-types.js'
import { WorkspaceSync } from './workspace-sync.js'

/** Transaction origin of writes made through this workspace. */
export const LOCAL_ORIGIN = Symbol('kitsync:local')
/** Origin of the change events of a collection adopted from a peer (see adopt). */
const ADOPTED_ORIGIN = Symbol('kitsync:adopted')
/**
 * Origin of the writes that settle a conflict a merged update brought (keep_both's copies):
 * made here, but caused by the remote write, so their change events say `remote`.
 */
const SETTLE_ORIGIN = Symbol('kitsync:settle')
/** Stands for the collections LevelDB could not list (a damaged block) in `list` and `export` (no collection has this name). */
const UNLISTED = '(unlisted)'

/** A collection document was loaded; `adopted`: it was created from a peer's copy, which no update event announced. */
export interface DocLoaded {
  name: string
  doc: Y.Doc
  adopted?: true
}

export interface LocalWorkspaceOptions {
  home: string
  /** Workspace name used when the home folder has no workspace yet. */
  name?: string
  maxRecordBytes?: number
  compaction?: Partial<CompactionPolicy>
}

/** What a queued write runs against: the loaded collection and its settings. */
interface WriteTarget {
  entry: LoadedCollection
  rules: EffectiveSettings
}

interface LoadedCollection {
  collection: RecordCollection
  log: CollectionLog
  /** Settles when the last update of this collection is durable. */
  lastWrite: Promise<void>
}

/**
 * A workspace whose store this process owns: collections are Y.Docs loaded on first use,
 * every update they emit (local or merged from a peer) is appended to the store, and a write
 * resolves only once its update is durable.
 */
export class LocalWorkspace implements Workspace, SyncHost {
  readonly mode = 'local' as const
  readonly store: DocStore
  /** Set when the workspace belongs to a home folder (not for bare databases in tests). */
  paths: HomePaths | undefined
  /** The workspace keys of this device (with a home folder). */
  keys: WorkspaceKeys | undefined
  private readonly infoValue: WorkspaceInfo
  private readonly maxRecordBytes: number | undefined
  private readonly emitter = new TypedEmitter<WorkspaceEvents & { closed: undefined; 'doc-loaded': DocLoaded }>()
  private readonly loaded = new Map<string, Promise<LoadedCollection>>()
  /** The collections of `loaded` whose load finished, for the synchronous path of the write queue. */
  private readonly ready = new Map<string, LoadedCollection>()
  private readonly known = new Set<string>()
  private readonly timer: NodeJS.Timeout
  private closed = false
  private readonly closeHooks: (() => Promise<void>)[] = []
  private readonly stickyRevoked = new Set<string>()
  private selfRevokedMarked = false
  private revocationWatch: Promise<void> | undefined
  /** Members with role `untrusted` (kept in step with `_members`, for the synchronous `shares`). */
  private readonly untrusted = new Set<string>()
  /** What `status` says about the peer; the peer process sets it. */
  peerState: PeerState
  /** The hybrid logical clock that stamps every write of this device. */
  readonly clock: Hlc
  private settingsWatch: Promise<void> | undefined
  /** Settings of each collection as `_collections` says now. */
  private readonly settingsCache = new Map<string, EffectiveSettings>()
  /** Ids of the conflicts already announced to subscribers. */
  private readonly conflictsSeen = new Set<string>()
  /** Selective sync settings, sync counters, and (with a running peer) sync now / fetch / reset. */
  readonly sync: WorkspaceSync = new WorkspaceSync(this)
  /** Local writes, in call order, group-committed per collection. */
  private readonly writes = new WriteQueue<WriteTarget>({
    ready: (name) => {
      const entry = this.ready.get(name)
      const rules = this.settingsCache.get(name)
      return entry === undefined || rules === undefined ? undefined : { entry, rules }
    },
    load: async (name, mustExist) => {
      const entry = mustExist ? await this.existing(name) : await this.load(name)
      return { entry, rules: await this.settingsOf(name) }
    },
    // Writes accepted before close() still run: close waits for the queue.
    commit: ({ entry }, body) => {
      entry.collection.doc.transact(body, LOCAL_ORIGIN)
      return entry.lastWrite
    },
  })

  private constructor(store: DocStore, info: WorkspaceInfo, known: string[], options: { maxRecordBytes?: number; socket: string; now?: () => number }) {
    this.store = store
    this.infoValue = info
    this.maxRecordBytes = options.maxRecordBytes
    for (const name of known) this.known.add(name)
    this.peerState = { running: false, socket: options.socket }
    this.clock = new Hlc(nodeTagOf(info.deviceId), options.now)
    // The age trigger of compaction needs a clock even when nothing is written.
    this.timer = setInterval(() => this.tick(), Math.min(3_600_000, Math.max(1000, store.policy.maxAgeMs / 4)))
    this.timer.unref()
  }

  /** Open (and on first use, initialise) the workspace of a home folder. */
  static async open(options: LocalWorkspaceOptions): Promise<LocalWorkspace> {
    const paths = homePaths(options.home)
    await ensureHome(paths.home)
    const { config } = await initWorkspace(paths, options.name)
    const deviceId = await deviceIdOf(paths.identity)
    const db = await openHomeStore(paths)
    let wal: WriteAheadFile
    let entries: { collection: string; update: Uint8Array }[]
    try {
      ;({ wal, entries } = WriteAheadFile.open(paths.wal))
    } catch (err) {
      await db.close()
      throw err
    }
    const info: WorkspaceInfo = { home: paths.home, deviceId, workspaceId: config.id, name: config.name, version: KITSYNC_VERSION }
    try {
      const ws = await LocalWorkspace.fromDatabase(db, info, {
        maxRecordBytes: options.maxRecordBytes ?? config.maxRecordBytes,
        compaction: options.compaction,
        socket: paths.socket,
        wal,
        recover: entries,
        snapshotFiles: new SnapshotFiles(paths.snapshots),
      })
      ws.paths = paths
      ws.keys = await WorkspaceKeys.load(paths.keys)
      ws.sync.configure(selectionSettings(config, paths.workspace))
      return ws
    } catch (err) {
      wal.close()
      await db.close()
      throw err
    }
  }

  /** Build a workspace over any abstract-level database (memory-level in unit tests). */
  static async fromDatabase(
    db: BinaryLevel,
    info: WorkspaceInfo,
    options: {
      maxRecordBytes?: number | undefined
      compaction?: Partial<CompactionPolicy> | undefined
      socket?: string
      wal?: WriteAheadFile
      recover?: { collection: string; update: Uint8Array }[]
      /** Where large snapshots are kept as files (without: in LevelDB). */
      snapshotFiles?: SnapshotFiles
      /** Wall clock of the hybrid logical clock (tests). */
      now?: () => number
    } = {},
  ): Promise<LocalWorkspace> {
    const store = new DocStore(db, {
      ...(options.compaction === undefined ? {} : { policy: options.compaction }),
      ...(options.wal === undefined ? {} : { wal: options.wal }),
      ...(options.snapshotFiles === undefined ? {} : { snapshotFiles: options.snapshotFiles }),
    })
    if (options.recover !== undefined && options.recover.length > 0) await store.recover(options.recover)
    await store.sweepSnapshotFiles()
    const known = await store.collectionNames()
    return new LocalWorkspace(store, info, known, {
      ...(options.maxRecordBytes === undefined ? {} : { maxRecordBytes: options.maxRecordBytes }),
      ...(options.now === undefined ? {} : { now: options.now }),
      socket: options.socket ?? '',
    })
  }

  async info(): Promise<WorkspaceInfo> {
    return { ...this.infoValue }
  }

  async get(collection: string, key: string): Promise<JsonValue | undefined> {
    return (await this.existing(collection)).collection.get(key)
  }

  async getAll(collection: string): Promise<Record<string, JsonValue>> {
    return (await this.existing(collection)).collection.entries()
  }

  // The write methods are not async: an async method that returns the queue's promise adds a
  // promise of its own and a job to resolve it through the queue's, per write, which ten thousand
  // un-awaited sets kept alive until their group ran. Their argument checks reject instead of throwing.
  set(collection: string, key: string, value: JsonValue, options?: SetOptions): Promise<void> {
    const field = options?.field
    try {
      this.assertOpen()
      assertCollectionName(collection)
      assertRecordKey(key)
      assertJsonValue(value)
      if (field !== undefined) assertFieldName(field)
    } catch (err) {
      return Promise.reject(err)
    }
    if (field === undefined) return this.writes.push(collection, false, this.setRecord, key, value)
    return this.writes.push(collection, false, (target) => this.setField(target, key, field, value))
  }

  /** A whole-record set, run in its group's transaction: one function for all of them (see WriteOp). */
  private readonly setRecord = ({ entry, rules }: WriteTarget, key: string, value: JsonValue): void => {
    const c = entry.collection
    this.assertNotAppendOnly(c, rules, key)
    const checked = rules.kind.validate(value, { collection: c.name, secretRules: rules.secretRules, now: Date.now() })
    this.checkLimits(c, rules, key, checked)
    c.set(key, checked, LOCAL_ORIGIN)
  }

  /** A set of one field: the kind checks the record as the field leaves it. */
  private setField({ entry, rules }: WriteTarget, key: string, field: string, value: JsonValue): void {
    const c = entry.collection
    this.assertNotAppendOnly(c, rules, key)
    const current = c.get(key)
    const whole = { ...(isJsonObject(current) ? current : {}), [field]: value }
    const checked = rules.kind.validate(whole, { collection: c.name, secretRules: rules.secretRules, now: Date.now() })
    this.checkLimits(c, rules, key, checked)
    c.set(key, isJsonObject(checked) ? (checked[field] ?? value) : value, LOCAL_ORIGIN, field)
  }

  private assertNotAppendOnly(c: RecordCollection, rules: EffectiveSettings, key: string): void {
    if (rules.kind.appendOnly === true && c.has(key)) {
      throw new KitsyncError('APPEND_ONLY', `${c.name} is append-only (${rules.kind.name}): record ${JSON.stringify(key)} exists and cannot be changed`, { details: { collection: c.name } })
    }
  }

  delete(collection: string, key: string): Promise<boolean> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.writes.push(collection, true, this.deleteRecord, key)
  }

  private readonly deleteRecord = ({ entry, rules }: WriteTarget, key: string): boolean => {
    const c = entry.collection
    if (rules.kind.appendOnly === true && c.has(key)) {
      throw new KitsyncError('APPEND_ONLY', `${c.name} is append-only (${rules.kind.name}): records cannot be deleted`, { details: { collection: c.name } })
    }
    return c.delete(key, LOCAL_ORIGIN)
  }

  add(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
      assertRecordKey(key)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.writes.push(collection, false, ({ entry, rules }) => {
      if (rules.kind.appendOnly === true && entry.collection.has(key)) throw new KitsyncError('APPEND_ONLY', `${collection} is append-only: record ${JSON.stringify(key)} cannot be changed`, { details: { collection } })
      const current = entry.collection.get(key)
      const before = isJsonObject(current) && Array.isArray(current[field]) ? (current[field] as JsonValue[]) : []
      const next = [...new Set([...before, ...elements])]
      if (!entry.collection.has(key)) this.checkLimits(entry.collection, rules, key, { [field]: next })
      else this.checkSetSize(collection, rules, field, next.length)
      entry.collection.addToSet(key, field, elements, LOCAL_ORIGIN)
    })
  }

  remove(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.writes.push(collection, true, ({ entry }) => entry.collection.removeFromSet(key, field, elements, LOCAL_ORIGIN))
  }

  append(collection: string, value: JsonValue, options: AppendOptions = {}): Promise<{ key: string }> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
      assertJsonValue(value)
      if (options.key !== undefined) assertRecordKey(options.key)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.writes.push(collection, false, ({ entry, rules }) => {
      const c = entry.collection
      const ctx = { collection, secretRules: rules.secretRules, now: Date.now() }
      if (options.field !== undefined) {
        const key = options.key
        if (key === undefined) throw new KitsyncError('INVALID_ARGUMENT', 'appending to a field needs the record key')
        if (c.fieldTypes[options.field] !== 'log') throw new KitsyncError('INVALID_ARGUMENT', `${options.field} is not an append-only list in ${collection} (${rules.kind.name})`, { details: { collection } })
        if (!c.has(key)) this.checkLimits(c, rules, key, {})
        c.appendToLog(key, options.field, value, LOCAL_ORIGIN)
        return { key }
      }
      const checked = rules.kind.validate(value, ctx)
      if (rules.kind.keyOf !== undefined && isJsonObject(checked)) {
        // A record per distinct entry (history: command + session); a repeat updates its counters.
        const key = options.key ?? rules.kind.keyOf(checked)
        const current = c.get(key)
        const at = typeof checked.at === 'number' ? checked.at : ctx.now
        if (isJsonObject(current)) {
          const count = typeof current.count === 'number' ? current.count + 1 : 2
          c.set(key, count, LOCAL_ORIGIN, 'count')
          c.set(key, Math.max(at, typeof current.lastAt === 'number' ? current.lastAt : 0), LOCAL_ORIGIN, 'lastAt')
          for (const f of ['cwd', 'exitCode'] as const) if (checked[f] !== undefined) c.set(key, checked[f] as JsonValue, LOCAL_ORIGIN, f)
        } else {
          const { at: _at, ...rest } = checked
          const record = { ...rest, firstAt: at, lastAt: at, count: 1 }
          this.checkLimits(c, rules, key, record)
          c.set(key, record, LOCAL_ORIGIN)
        }
        return { key }
      }
      const key = options.key ?? c.clock.now()
      if (c.has(key)) throw new KitsyncError('APPEND_ONLY', `${collection} already has a record ${JSON.stringify(key)}`, { details: { collection } })
      this.checkLimits(c, rules, key, checked)
      c.set(key, checked, LOCAL_ORIGIN)
      return { key }
    })
  }

  async collection(name: string): Promise<CollectionSettingsView> {
    this.assertOpen()
    assertCollectionName(name)
    return this.settingsView(name, await this.settingsOf(name))
  }

  async configure(name: string, change: CollectionChange): Promise<CollectionSettingsView> {
    this.assertOpen()
    assertCollectionName(name)
    const store = await this.load(COLLECTIONS_COLLECTION)
    const current = toCollectionSettings(name, store.collection.get(name))
    const next: CollectionSettings = { ...current }
    if (change.kind !== undefined) {
      if (!isKindName(change.kind)) throw new KitsyncError('INVALID_ARGUMENT', `unknown kind ${JSON.stringify(change.kind)}; kinds: ${Object.keys(KINDS).join(', ')}`)
      if (change.kind !== current.kind && this.known.has(name) && (await this.load(name)).collection.size > 0) {
        throw new KitsyncError('INVALID_ARGUMENT', `${name} already holds records as ${current.kind}; a kind is chosen before the first record`, { details: { collection: name } })
      }
      next.kind = change.kind
    }
    if (change.policy !== undefined) {
      if (!isConflictPolicy(change.policy)) throw new KitsyncError('INVALID_ARGUMENT', `unknown conflict policy ${JSON.stringify(change.policy)}; use merge, latest_wins, keep_both or ask`)
      next.policy = change.policy
    }
    if (change.limits !== undefined) {
      const limits = { ...(current.limits ?? {}) }
      for (const [k, v] of Object.entries(change.limits)) {
        if (!(LIMIT_NAMES as readonly string[]).includes(k)) throw new KitsyncError('INVALID_ARGUMENT', `unknown limit ${JSON.stringify(k)}; limits: ${LIMIT_NAMES.join(', ')}`)
        const name = k as (typeof LIMIT_NAMES)[number]
        if (v === null) delete limits[name]
        else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) limits[name] = v
        else throw new KitsyncError('INVALID_ARGUMENT', `limit ${k} must be a whole number of at least 0`)
      }
      next.limits = limits
    }
    if (change.secretRules !== undefined) {
      for (const rule of change.secretRules) {
        const error = secretRuleError(rule)
        if (typeof rule.name !== 'string' || rule.name.length === 0 || error !== undefined) throw new KitsyncError('INVALID_ARGUMENT', `secret rule ${JSON.stringify(rule.name)}: ${error ?? 'needs a name'}`)
      }
      next.secretRules = change.secretRules.map((r) => ({ name: r.name, pattern: r.pattern }))
    }
    store.collection.set(name, JSON.parse(JSON.stringify(next)) as JsonValue, LOCAL_ORIGIN)
    await store.lastWrite
    this.settingsCache.delete(name)
    this.applySettings(name)
    return this.settingsView(name, effectiveSettings(next))
  }

  async conflicts(collection?: string): Promise<ConflictView[]> {
    this.assertOpen()
    const names = collection === undefined ? this.appCollectionNames() : [collection]
    const out: ConflictView[] = []
    for (const name of names) {
      const c = collection === undefined ? (await this.load(name)).collection : (await this.existing(name)).collection
      for (const open of c.openConflicts()) out.push({ collection: name, ...open })
    }
    return out
  }

  async resolve(collection: string, id: string, choice: ResolveChoice): Promise<ResolveResult> {
    const entry = await this.existing(collection)
    const rules = await this.settingsOf(collection)
    if ('value' in choice) {
      assertJsonValue(choice.value)
      rules.kind.validate(choice.value, { collection, secretRules: rules.secretRules, now: Date.now() })
    }
    const r = resolveConflict(entry.collection, id, choice, LOCAL_ORIGIN)
    await entry.lastWrite
    await this.audit('conflict', `resolved conflict ${id} on ${collection}/${r.key}${r.field === undefined ? '' : `.${r.field}`}`)
    return { collection, ...r, ...(r.value === undefined ? {} : { value: r.value }) }
  }

  private settingsView(name: string, rules: EffectiveSettings): CollectionSettingsView {
    return {
      name,
      kind: rules.kind.name,
      description: rules.kind.description,
      policy: rules.policy,
      limits: rules.limits,
      fieldTypes: { ...rules.kind.fieldTypes },
      appendOnly: rules.kind.appendOnly === true,
      onDemand: rules.kind.onDemand === true,
      secretRules: rules.secretRules,
    }
  }

  private checkLimits(c: RecordCollection, rules: EffectiveSettings, key: string, value: JsonValue): void {
    const max = rules.limits.maxRecords
    if (max !== undefined && !c.has(key) && c.size >= max) {
      throw new KitsyncError('LIMIT_EXCEEDED', `${c.name} holds ${c.size} records, the limit for ${rules.kind.name} is ${max}`, { details: { collection: c.name, limit: 'maxRecords', max } })
    }
    if (isJsonObject(value)) {
      const types = c.fieldTypes
      for (const field in types) {
        const type = types[field]
        const v = value[field]
        if ((type === 'set' || type === 'growset') && Array.isArray(v)) this.checkSetSize(c.name, rules, field, new Set(v).size)
      }
    }
  }

  private checkSetSize(collection: string, rules: EffectiveSettings, field: string, size: number): void {
    const max = rules.limits.maxSetSize
    if (max !== undefined && size > max) {
      throw new KitsyncError('LIMIT_EXCEEDED', `${field} would hold ${size} elements, the limit in ${collection} (${rules.kind.name}) is ${max}`, { details: { collection, limit: 'maxSetSize', max } })
    }
  }

  /** Settings of a collection from `_collections` (kind by name when it has none). */
  private async settingsOf(name: string): Promise<EffectiveSettings> {
    const cached = this.settingsCache.get(name)
    if (cached !== undefined) return cached
    let rules: EffectiveSettings
    if (isInternalCollection(name)) rules = effectiveSettings({ kind: 'generic' })
    else {
      await this.watchSettings()
      rules = effectiveSettings(toCollectionSettings(name, (await this.load(COLLECTIONS_COLLECTION)).collection.get(name)))
    }
    // Dropped whenever `_collections` changes (see watchSettings).
    this.settingsCache.set(name, rules)
    return rules
  }

  /** Keep loaded collections in step with `_collections`, whichever device changed it. */
  private watchSettings(): Promise<void> {
    this.settingsWatch ??= (async () => {
      const store = (await this.load(COLLECTIONS_COLLECTION)).collection
      store.onChange((changes) => {
        for (const c of changes) {
          this.settingsCache.delete(c.key)
          this.applySettings(c.key)
        }
      })
    })()
    return this.settingsWatch
  }

  private applySettings(name: string): void {
    const p = this.loaded.get(name)
    const store = this.loaded.get(COLLECTIONS_COLLECTION)
    if (p === undefined || store === undefined) return
    void Promise.all([p, store]).then(([entry, settings]) => {
      const rules = effectiveSettings(toCollectionSettings(name, settings.collection.get(name)))
      entry.collection.configure({ policy: rules.policy, fieldTypes: { ...rules.kind.fieldTypes } })
    }, () => undefined)
  }

  /** Settle conflicts found in a merged update by the collection's policy; tell subscribers and the audit log. */
  private onConflicts(name: string, collection: RecordCollection, found: DetectedConflict[]): void {
    // After the merging transaction: settling writes, which must not happen inside its observers.
    queueMicrotask(() => {
      if (this.closed) return
      for (const c of found) {
        const event = settleConflict(collection, c, SETTLE_ORIGIN, this.infoValue.deviceId, Date.now())
        if (this.conflictsSeen.has(event.id)) continue
        this.conflictsSeen.add(event.id)
        this.emitter.emit('sync:conflict', event)
        void this.audit('conflict', `${event.policy} ${event.resolution}: ${name}/${c.key}${c.field === undefined ? '' : `.${c.field}`} (${event.versions.length} versions, id ${event.id})`).catch(() => undefined)
      }
    })
  }

  async list(): Promise<CollectionInfo[]> {
    this.assertOpen()
    const out: CollectionInfo[] = []
    for (const name of this.appCollectionNames()) {
      try {
        const { collection, log } = await this.load(name)
        const open = collection.openConflicts().length
        out.push({ name, records: collection.size, bytes: log.stats().bytes, kind: (await this.settingsOf(name)).kind.name, policy: collection.policy, ...(open > 0 ? { openConflicts: open } : {}) })
      } catch (err) {
        const e = toKitsyncError(err)
        out.push({ name, records: 0, bytes: 0, error: { code: e.code, message: e.message } })
      }
    }
    const damage = this.store.namesDamage
    if (damage !== undefined) out.push({ name: UNLISTED, records: 0, bytes: 0, error: { code: damage.code, message: damage.message } })
    return out
  }

  async export(): Promise<WorkspaceExport> {
    this.assertOpen()
    const result: WorkspaceExport = {
      format: 'kitsync-export',
      formatVersion: 1,
      workspace: { id: this.infoValue.workspaceId, name: this.infoValue.name },
      exportedAt: new Date().toISOString(),
      collections: {},
      unreadable: [],
    }
    for (const name of this.appCollectionNames()) {
      try {
        result.collections[name] = (await this.load(name)).collection.entries()
      } catch (err) {
        const e = toKitsyncError(err)
        result.unreadable.push({ collection: name, code: e.code, message: e.message })
      }
    }
    const damage = this.store.namesDamage
    if (damage !== undefined) result.unreadable.push({ collection: UNLISTED, code: damage.code, message: damage.message })
    return result
  }

  async status(): Promise<WorkspaceStatus> {
    const revoked = await this.selfRevocation()
    return { info: await this.info(), peer: { ...this.peerState }, collections: await this.list(), ...(revoked === undefined ? {} : { revoked }) }
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
    await this.rememberRevoked(this.infoValue.deviceId)
    this.emitter.emit('device:revoked-self', r)
    return true
  }

  on<K extends keyof WorkspaceEvents>(event: K, listener: (payload: WorkspaceEvents[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }

  changes(options: ChangesOptions = {}): AsyncIterable<ChangeEvent> {
    if (options.collection !== undefined) assertCollectionName(options.collection)
    return changeStream(this.emitter, options)
  }

  /** Names of all collections, including kitsync's internal ones and ones not loaded yet. */
  collectionNames(): string[] {
    return [...this.known].sort()
  }

  /** The collections apps see (internal `_` collections left out). */
  appCollectionNames(): string[] {
    return this.collectionNames().filter((n) => !isInternalCollection(n))
  }

  get workspaceId(): string {
    return this.infoValue.workspaceId
  }

  /** SyncHost: the document of any collection, internal ones included, created if missing. */
  async openDoc(name: string): Promise<Y.Doc> {
    return (await this.load(name)).collection.doc
  }

  /** SyncHost: does the collection exist (stored, or loaded in this process)? */
  hasCollection(name: string): boolean {
    return this.known.has(name) || this.loaded.has(name)
  }


  /** SyncHost: what this device asks peers for (sent as INTEREST). */
  interest(): InterestRule[] {
    return this.sync.selection.rules(new Set([...this.known, ...this.loaded.keys()]))
  }

  async items(): Promise<ItemsView> {
    this.assertOpen()
    return this.sync.items()
  }

  setItems(change: ItemsChange): Promise<ItemsView> {
    this.assertOpen()
    return this.sync.setItems(change)
  }

  fetch(collection: string, options?: { timeoutMs?: number }): Promise<FetchResult> {
    this.assertOpen()
    return this.sync.fetch(collection, options)
  }

  syncNow(options?: { timeoutMs?: number }): Promise<SyncNowReport> {
    this.assertOpen()
    return this.sync.syncNow(options)
  }

  stats(): Promise<SyncStatsView> {
    this.assertOpen()
    return this.sync.stats()
  }

  resetSync(): Promise<ResetReport> {
    this.assertOpen()
    return this.sync.reset()
  }

  /** SyncHost: the document of a collection if it is loaded now. */
  loadedDoc(name: string): Y.Doc | undefined {
    return this.ready.get(name)?.collection.doc
  }

  /** SyncHost: the collection's stored updates, to send whole to a device that has none of it (see CollectionLog.storedState). */
  async storedState(name: string): Promise<Uint8Array[] | undefined> {
    if (!this.hasCollection(name)) return undefined
    return (await this.load(name)).log.storedState()
  }

  /** SyncHost: resolves when every update of this collection so far is durable. */
  async flushDoc(name: string): Promise<void> {
    const entry = await this.loaded.get(name)
    // Durable once acknowledged (the write-ahead file); without one, once LevelDB has it.
    await (this.store.wal === undefined ? entry?.log.flush() : entry?.lastWrite)
  }

  /**
   * Called with every collection document when it is loaded (the sync engine tracks them).
   * A listener must not change the document synchronously: the store subscribes to its
   * updates right after the listeners run.
   */
  onDocLoaded(listener: (e: DocLoaded) => void): () => void {
    for (const p of this.loaded.values()) void p.then((entry) => listener({ name: entry.collection.name, doc: entry.collection.doc }), () => undefined)
    return this.emitter.on('doc-loaded', listener)
  }

  /** Emit a sync event to the workspace's subscribers (the mesh calls this). */
  emitEvent<K extends keyof WorkspaceEvents>(event: K, payload: WorkspaceEvents[K]): void {
    this.emitter.emit(event, payload as never)
  }

  async members(): Promise<Record<string, Member>> {
    const out: Record<string, Member> = {}
    const entries = (await this.load(MEMBERS_COLLECTION)).collection.entries()
    for (const [id, value] of Object.entries(entries)) {
      const m = toMember(value)
      if (m !== undefined) out[id] = m
    }
    return out
  }

  /**
   * SyncHost: an untrusted peer (the VPS), and this device if it is one, exchange only the
   * collections that gate transport (`_members`, `_revoked`); everything else stays apart.
   * Between trusted devices, selective sync decides (items and local-only collections).
   */
  shares(peerId: string, collection: string): boolean {
    if (this.untrusted.has(peerId) || this.untrusted.has(this.infoValue.deviceId)) return TRANSPORT_COLLECTIONS.has(collection)
    return this.sync.selection.syncs(collection, this.hasCollection(collection))
  }

  /** SyncHost: nothing an untrusted peer sends is applied (it could otherwise rewrite the membership). */
  accepts(peerId: string): boolean {
    return !this.untrusted.has(peerId)
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
    return toMember((await this.load(MEMBERS_COLLECTION)).collection.get(deviceId)) !== undefined
  }

  async isRevoked(deviceId: string): Promise<boolean> {
    await this.watchRevocations()
    return this.stickyRevoked.has(deviceId) || toRevocation((await this.load(REVOKED_COLLECTION)).collection.get(deviceId)) !== undefined
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
        self: id === this.infoValue.deviceId,
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
    const by = this.infoValue.deviceId
    const revocation: Revocation = { revokedBy: by, revokedAt: Date.now(), ...(reason === undefined ? {} : { reason }) }
    await this.rememberRevoked(target.peerId)
    const entry = await this.load(REVOKED_COLLECTION)
    entry.collection.set(target.peerId, { ...revocation }, LOCAL_ORIGIN)
    await entry.lastWrite
    // A new key epoch: what is encrypted from now on is unreadable with anything the revoked
    // device held. The running peer hands it to trusted members (listening to this event).
    const epoch = this.keys === undefined ? undefined : await this.keys.rotate()
    this.emitter.emit('device:revoked', { peerId: target.peerId, name: target.name, by })
    await this.audit('device-revoked', `revoked ${target.name}${reason === undefined ? '' : `: ${reason}`}`, target.peerId)
    if (epoch !== undefined) await this.audit('key-rotated', `workspace key epoch ${epoch}, after revoking ${target.name}`)
    return { ...target, state: 'revoked', revokedBy: by, revokedAt: revocation.revokedAt }
  }

  async revocations(): Promise<Record<string, Revocation>> {
    await this.watchRevocations()
    const out: Record<string, Revocation> = {}
    for (const [id, value] of Object.entries((await this.load(REVOKED_COLLECTION)).collection.entries())) {
      const r = toRevocation(value)
      if (r !== undefined) out[id] = r
    }
    return out
  }

  /** Append to the synced audit log. */
  async audit(type: AuditType, reason: string, peer?: string): Promise<void> {
    const entry: AuditEntry = { at: Date.now(), device: this.infoValue.deviceId, type, reason, ...(peer === undefined ? {} : { peer }) }
    const key = `${entry.at.toString(36).padStart(9, '0')}-${entry.device.slice(-8)}-${Math.random().toString(36).slice(2, 8)}`
    const log = await this.load(AUDIT_COLLECTION)
    log.collection.set(key, { ...entry }, LOCAL_ORIGIN)
    await log.lastWrite
  }

  async log(): Promise<AuditEntryView[]> {
    const entries = Object.values((await this.load(AUDIT_COLLECTION)).collection.entries())
      .map((v) => toAuditEntry(v))
      .filter((e): e is AuditEntry => e !== undefined)
    return entries.sort((a, b) => a.at - b.at)
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
      const revoked = (await this.load(REVOKED_COLLECTION)).collection
      const members = (await this.load(MEMBERS_COLLECTION)).collection
      for (const id of revoked.keys()) if (!this.stickyRevoked.has(id)) await this.rememberRevoked(id)
      for (const [id, value] of Object.entries(members.entries())) if (toMember(value)?.role === 'untrusted') this.untrusted.add(id)
      revoked.onChange((changes) => {
        for (const c of changes) {
          const r = toRevocation(c.value)
          if (r !== undefined) {
            if (!this.stickyRevoked.has(c.key)) {
              void this.rememberRevoked(c.key)
              const name = toMember(members.get(c.key))?.name ?? c.key.slice(-8)
              this.emitter.emit('device:revoked', { peerId: c.key, name, by: r.revokedBy })
            }
          } else if (this.stickyRevoked.has(c.key) && !this.closed) {
            // Someone removed a revocation: it stands all the same; put it back.
            revoked.set(c.key, { revokedBy: this.infoValue.deviceId, revokedAt: Date.now(), reason: 'restored: a revocation cannot be undone' }, LOCAL_ORIGIN)
          }
        }
      })
      members.onChange((changes) => {
        for (const c of changes) {
          const m = toMember(c.value)
          if (m?.role === 'untrusted') this.untrusted.add(c.key)
          else if (m !== undefined) this.untrusted.delete(c.key)
          if (m !== undefined && c.origin !== LOCAL_ORIGIN && c.key !== this.infoValue.deviceId) this.emitter.emit('device:joined', { peerId: c.key, name: m.name, by: m.addedBy })
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

  async addMember(deviceId: string, member: Member): Promise<void> {
    if (await this.isRevoked(deviceId)) {
      throw new KitsyncError('DEVICE_REVOKED', 'this device was revoked; it can come back only with a new identity (a new home folder) and a new pairing')
    }
    const entry = await this.load(MEMBERS_COLLECTION)
    entry.collection.set(deviceId, { ...member }, LOCAL_ORIGIN)
    await entry.lastWrite
    if (deviceId !== this.infoValue.deviceId) {
      this.emitter.emit('device:joined', { peerId: deviceId, name: member.name, by: member.addedBy })
      await this.audit('device-joined', `${member.name} joined`, deviceId)
    }
  }

  /** Apply a Yjs update to an internal collection (the membership received when joining). */
  async applyInternalUpdate(name: string, update: Uint8Array, origin: unknown): Promise<void> {
    const entry = await this.load(name)
    Y.applyUpdate(entry.collection.doc, update, origin)
    await entry.lastWrite
  }

  /** State of an internal collection as one update (sent to a device that joins). */
  async encodeCollection(name: string): Promise<Uint8Array> {
    return Y.encodeStateAsUpdate((await this.load(name)).collection.doc)
  }

  /** Switch this home folder to another workspace (after joining it); keeps the local data. */
  async adoptWorkspace(workspaceId: string, name: string): Promise<void> {
    if (this.paths !== undefined) {
      const current = await readWorkspaceConfig(this.paths)
      await writeWorkspaceConfig(this.paths, { ...(current ?? { createdAt: Date.now() }), id: workspaceId, name })
    }
    this.infoValue.workspaceId = workspaceId
    this.infoValue.name = name
  }

  /** Fold the update log of one collection (or of all) into a snapshot now, whatever the policy says. */
  async compact(collection?: string): Promise<void> {
    const names = collection === undefined ? this.collectionNames() : [collection]
    for (const name of names) await (await this.existing(name)).log.compactNow()
  }

  /** Storage figures of one collection (for status and benchmarks). */
  async storageStats(collection: string): Promise<{ bytes: number; logEntries: number; snapshotBytes: number }> {
    return (await this.existing(collection)).log.stats()
  }

  /** Resolves when every update queued so far is durable. */
  async flush(): Promise<void> {
    for (const p of [...this.loaded.values()]) {
      const entry = await p.catch(() => undefined)
      if (entry !== undefined) await entry.log.flush()
    }
  }

  /** Run `hook` first when the workspace closes (e.g. stop serving the control socket). */
  onClose(hook: () => Promise<void>): void {
    this.closeHooks.push(hook)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.writes.idle()
    clearInterval(this.timer)
    for (const hook of this.closeHooks.splice(0)) await hook()
    this.emitter.emit('closed', undefined)
    await this.flush()
    // A clean stop folds each log into its snapshot, so the next start reads one value per collection.
    for (const p of [...this.loaded.values()]) {
      const entry = await p.catch(() => undefined)
      if (entry !== undefined && entry.log.failed === undefined && entry.log.stats().logEntries > 0) await entry.log.compactNow().catch(() => undefined)
      entry?.log.stop()
    }
    await this.store.db.close()
    this.store.wal?.close()
  }

  private assertOpen(): void {
    if (this.closed) throw new KitsyncError('CONNECTION_CLOSED', 'the workspace is closed')
  }

  private async existing(collection: string): Promise<LoadedCollection> {
    this.assertOpen()
    assertCollectionName(collection)
    if (!this.known.has(collection)) {
      // A damaged block may hold the metadata that lists it: asked by name, it is looked up (and reported).
      if (this.store.namesDamage === undefined || !(await this.store.stored(collection))) {
        throw new KitsyncError('UNKNOWN_COLLECTION', `no collection named ${collection}`, { details: { collection } })
      }
      this.known.add(collection)
    }
    return this.load(collection)
  }

  /** Load a collection once; concurrent callers share the same promise. */
  private load(name: string): Promise<LoadedCollection> {
    let p = this.loaded.get(name)
    if (p === undefined) {
      p = this.loadFromStore(name)
      this.loaded.set(name, p)
      // A collection that failed to load is tried again on next use (nothing is cached or deleted).
      p.catch(() => this.loaded.delete(name))
    }
    return p
  }

  /**
   * SyncHost: a collection this device does not hold yet, created from a peer's copy (the
   * first sync of a new device). The copy is applied before anything listens to the document
   * and stored as it came, so it is neither re-encoded nor observed record by record; change
   * events are still emitted for its records. Undefined when the collection exists or is being
   * loaded: the caller then applies the update as any other.
   */
  async adopt(name: string, update: Uint8Array): Promise<Y.Doc | undefined> {
    this.assertOpen()
    if (this.known.has(name) || this.loaded.has(name)) return undefined
    const p = this.loadFromStore(name, update)
    this.loaded.set(name, p)
    p.catch(() => this.loaded.delete(name))
    return (await p).collection.doc
  }

  private async loadFromStore(name: string, adopted?: Uint8Array): Promise<LoadedCollection> {
    const doc = new Y.Doc({ gc: true })
    const snapshot = (): Uint8Array => Y.encodeStateAsUpdate(doc)
    // Adopted: a collection this device does not know, so the store holds nothing of it.
    const { log, loaded } = adopted === undefined ? await this.store.open(name, snapshot) : this.store.create(name, snapshot)
    // Read while the updates are applied (awaited below; the no-op keeps an early failure from counting as unhandled).
    const settings = this.settingsOf(name)
    settings.catch(() => undefined)
    try {
      // One transaction for the snapshot and the log: observers run once, and this is far
      // cheaper than Y.mergeUpdates, which slows down sharply with thousands of small updates.
      doc.transact(() => {
        for (const update of loaded.updates) Y.applyUpdate(doc, update)
      })
    } catch (err) {
      throw new KitsyncError('DATA_CORRUPTION', `collection ${name}: stored updates cannot be applied; the stored data was left as it is`, {
        details: { collection: name },
        cause: err,
      })
    }
    let adoptedWrite: Promise<void> | undefined
    if (adopted !== undefined) {
      // The copy is written on another thread while it is applied here (a snapshot file, or
      // LevelDB); it becomes the collection on disk only if it applies (else it is removed).
      const adoption = await log.adopt(adopted)
      try {
        Y.applyUpdate(doc, adopted)
      } catch (err) {
        await adoption.drop()
        throw new KitsyncError('PROTOCOL_ERROR', `malformed update for ${name}`, { details: { collection: name }, cause: err })
      }
      // (Handled below; the no-op keeps an early failure from counting as unhandled meanwhile.)
      adoptedWrite = adoption.keep()
      adoptedWrite.catch(() => undefined)
    }
    // The workspace's record limit is for app data; kitsync's own collections keep the default.
    const internal = isInternalCollection(name)
    const limit = internal ? undefined : this.maxRecordBytes
    const rules = await settings
    const collection = new RecordCollection(name, doc, {
      clock: this.clock,
      policy: rules.policy,
      fieldTypes: { ...rules.kind.fieldTypes },
      ...(limit === undefined ? {} : { maxRecordBytes: limit }),
    })
    if (!internal) {
      collection.onConflict((found) => this.onConflicts(name, collection, found))
      collection.onConflictRecorded((open) => {
        // Recorded by another device: tell this device's subscribers once.
        if (this.conflictsSeen.has(open.id)) return
        this.conflictsSeen.add(open.id)
        const { detectedBy: _by, ...rest } = open
        this.emitter.emit('sync:conflict', { ...rest, collection: name, policy: collection.policy, resolution: 'open' })
      })
    }
    const entry: LoadedCollection = { collection, log, lastWrite: Promise.resolve() }
    // The sync engine (a doc-loaded listener) subscribes to the document's updates first, so
    // peers are sent an update before this device writes it to disk: the network round trip
    // does not wait for the write-ahead file and LevelDB. A write is still confirmed to its
    // caller only once it is durable here.
    this.emitter.emit('doc-loaded', { name, doc, ...(adopted === undefined ? {} : { adopted: true }) })
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
    doc.on('update', (update: Uint8Array) => track(log.append(update)))
    if (!isInternalCollection(name)) {
      collection.onChange((changes) => this.emitChanges(name, changes))
      if (adopted !== undefined) {
        const changes: RecordChange[] = collection.keys().map((key) => ({ key, origin: ADOPTED_ORIGIN, get value() { return collection.get(key) } }))
        if (changes.length > 0) this.emitChanges(name, changes)
      }
    }
    this.ready.set(name, entry)
    return entry
  }

  private emitChanges(collection: string, changes: RecordChange[]): void {
    if (this.emitter.listenerCount('change') === 0) return
    const at = Date.now()
    const source = changes[0]?.origin === LOCAL_ORIGIN ? 'local' : 'remote'
    for (const c of changes) {
      const value = c.value
      const event: ChangeEvent = value === undefined ? { collection, key: c.key, op: 'del', source, at } : { collection, key: c.key, op: 'set', value, source, at }
      this.emitter.emit('change', event)
    }
  }

  private tick(): void {
    for (const p of this.loaded.values()) void p.then((entry) => entry.log.tick(), () => undefined)
  }
}

/** The selective sync settings of workspace.json, checked (a hand-edited file may be wrong). */
function selectionSettings(config: { items?: unknown; localOnly?: unknown }, file: string): { items?: string[]; localOnly?: string[] } {
  const list = (value: unknown, name: string): string[] | undefined => {
    if (value === undefined || value === null) return undefined
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new KitsyncError('INVALID_ARGUMENT', `${file}: ${name} must be a list of collection names or patterns`)
    }
    return value as string[]
  }
  const items = list(config.items, 'items')
  const localOnly = list(config.localOnly, 'localOnly')
  return { ...(items === undefined ? {} : { items }), ...(localOnly === undefined ? {} : { localOnly }) }
}
