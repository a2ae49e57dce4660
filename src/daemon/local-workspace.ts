import * as Y from 'yjs'
import { changeStream } from '../core/change-stream.js'
import { TypedEmitter } from '../core/emitter.js'
import { KitsyncError } from '../core/errors.js'
import type { JsonValue } from '../core/json.js'
import { TRANSPORT_COLLECTIONS, type AuditType, type Member, type Revocation } from '../core/membership.js'
import { assertCollectionName } from '../core/names.js'
import { Hlc, nodeTagOf } from '../core/hlc.js'
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
  IndexCheckReport,
  WorkspaceExport,
  WorkspaceInfo,
  WorkspaceStatus,
} from '../core/workspace-types.js'
import type { DocStore } from '../store/doc-store.js'
import type { BinaryLevel } from '../store/level.js'
import type { SyncHost } from '../sync/sync-host.js'
import { readWorkspaceConfig, writeWorkspaceConfig, type HomePaths } from '../store/home.js'
import type { WorkspaceKeys } from '../store/key-file.js'
import type { InterestRule, ItemsChange } from '../core/selection.js'
import type { FetchResult, ItemsView, ResetReport, SyncCallOptions, SyncNowReport, SyncStatsView } from '../core/sync-types.js'
import { CollectionRegistry, type DocLoaded } from './collection-registry.js'
import { emitRecordChanges } from './change-events.js'
import { CollectionSettingsBook } from './collection-settings.js'
import { DeviceTrust } from './device-trust.js'
import { WorkspaceConflicts } from './workspace-conflicts.js'
import { withSyncStatus } from './sync-status.js'
import { WorkspaceSync } from './workspace-sync.js'
import { databaseParts, homeParts, type DatabaseOptions, type LocalWorkspaceOptions, type LocalWorkspaceParts } from './workspace-parts.js'
import { WorkspaceWrites } from './workspace-writes.js'
import { WorkspaceTransfer } from './workspace-transfer.js'
import type { GitExportOptions, GitExportReport, ImportOptions, ImportReport, ImportSource } from '../core/transfer-types.js'
import { WorkspaceHistory } from './workspace-history.js'
import { WorkspaceUnits } from './workspace-units.js'

/**
 * A workspace whose store this process owns: collections are Y.Docs loaded on first use,
 * every update they emit (local or merged from a peer) is appended to the store, and a write
 * resolves only once its update is durable. This class is the facade that the API, the
 * control server and the sync engine see; the collections (CollectionRegistry), their
 * settings (CollectionSettingsBook), the membership (DeviceTrust) and the write rules
 * (core/write-rules) each live in their own module.
 */
export class LocalWorkspace implements Workspace, SyncHost {
  readonly mode = 'local' as const
  readonly store: DocStore
  /** Set when the workspace belongs to a home folder (not for bare databases in tests). */
  readonly paths: HomePaths | undefined
  /** The workspace keys of this device (with a home folder). */
  readonly keys: WorkspaceKeys | undefined
  private readonly infoValue: WorkspaceInfo
  private readonly emitter = new TypedEmitter<WorkspaceEvents & { closed: undefined; 'doc-loaded': DocLoaded }>()
  private readonly registry: CollectionRegistry
  readonly settings: CollectionSettingsBook // also folder-wiring.ts: a folder manifest's history retention
  private readonly trust: DeviceTrust
  private readonly conflictDesk: WorkspaceConflicts
  private readonly writes: WorkspaceWrites // local writes, in call order, group-committed per collection
  private readonly transfer: WorkspaceTransfer // git export and import
  readonly historyDesk: WorkspaceHistory // history of records; the peer syncs it (daemon/history-sync-store.ts)
  private readonly timer: NodeJS.Timeout
  private closed = false
  private readonly closeHooks: (() => Promise<void>)[] = []
  private peerState: PeerState // what `status` says about the peer (see peerStarted)
  private readonly socket: string
  /** The hybrid logical clock that stamps every write of this device. */
  readonly clock: Hlc
  /** Selective sync settings, sync counters, and (with a running peer) sync now / fetch / reset. */
  readonly sync: WorkspaceSync = new WorkspaceSync(this)
  readonly units: WorkspaceUnits // units of the collections, and blobs (core/unit-types.ts); SyncHost.units

  private constructor(parts: LocalWorkspaceParts) {
    this.store = parts.store
    this.infoValue = parts.info
    this.paths = parts.paths
    this.keys = parts.keys
    this.socket = parts.socket
    this.peerState = { running: false, socket: parts.socket }
    this.clock = new Hlc(nodeTagOf(parts.info.deviceId), parts.now)
    this.historyDesk = new WorkspaceHistory({ store: parts.store, registry: () => this.registry, devices: () => this.devices(), write: this, now: parts.now })
    // The registry and the settings need each other (a collection loads with its settings, kept in a collection): through this facade.
    this.registry = new CollectionRegistry({
      store: parts.store,
      clock: this.clock,
      known: parts.known,
      maxRecordBytes: parts.maxRecordBytes,
      derivers: [...parts.derivers, this.historyDesk.deriver],
      unloadIdleMs: parts.unloadIdleMs,
      hooks: {
        assertOpen: () => this.assertOpen(),
        settingsOf: (name) => this.settings.settingsOf(name),
        conflicts: (name, collection, found) => this.conflictDesk.found(name, collection, found),
        conflictRecorded: (name, collection, open) => this.conflictDesk.recorded(name, collection, open),
        docLoaded: (e) => (this.sync.offline.watch(e.name, e.doc), this.emitter.emit('doc-loaded', e)),
        changes: (name, changes) => emitRecordChanges(this.emitter, name, changes),
      },
    })
    this.settings = new CollectionSettingsBook(this.registry)
    const { deviceId } = parts.info
    const closed = (): boolean => this.closed
    this.trust = new DeviceTrust({ deviceId, registry: this.registry, store: parts.store, keys: parts.keys, events: this.emitter, closed })
    const audit = (type: AuditType, reason: string): Promise<void> => this.trust.audit(type, reason)
    this.conflictDesk = new WorkspaceConflicts({ deviceId, registry: this.registry, settings: this.settings, audit, events: this.emitter, closed })
    const assertOpen = (): void => this.assertOpen()
    this.writes = new WorkspaceWrites({ registry: this.registry, settings: this.settings, assertOpen, offline: this.sync.offline })
    this.transfer = new WorkspaceTransfer({ workspace: this, registry: this.registry, maxRecordBytes: parts.maxRecordBytes, assertOpen })
    if (parts.selection !== undefined) this.sync.configure(parts.selection)
    this.units = new WorkspaceUnits(parts.store, this.registry, this.settings, this.trust, () => this.assertOpen())
    // The age trigger of compaction needs a clock even when nothing is written.
    this.timer = setInterval(() => (this.registry.tick(), this.historyDesk.tick()), Math.min(3_600_000, Math.max(1000, parts.store.policy.maxAgeMs / 4)))
    this.timer.unref()
  }

  /** Open (and on first use, initialise) the workspace of a home folder. */
  static async open(options: LocalWorkspaceOptions): Promise<LocalWorkspace> {
    const parts = await homeParts(options)
    try {
      return new LocalWorkspace(parts)
    } catch (err) {
      parts.store.wal?.close()
      await parts.store.db.close()
      throw err
    }
  }

  /** Build a workspace over any abstract-level database (memory-level in unit tests). */
  static async fromDatabase(db: BinaryLevel, info: WorkspaceInfo, options: DatabaseOptions = {}): Promise<LocalWorkspace> {
    return new LocalWorkspace(await databaseParts(db, info, options))
  }

  async info(): Promise<WorkspaceInfo> {
    return { ...this.infoValue }
  }

  // Reads come from the stored index rows while the collection's document is not loaded (see CollectionRegistry.forRead).
  get(collection: string, key: string): Promise<JsonValue | undefined> {
    return this.registry.get(collection, key)
  }

  getAll(collection: string): Promise<Record<string, JsonValue>> {
    return this.registry.entries(collection)
  }

  // The writes return the queue's promise as it is (see WorkspaceWrites).
  set(collection: string, key: string, value: JsonValue, options?: SetOptions): Promise<void> {
    return this.writes.set(collection, key, value, options)
  }

  delete(collection: string, key: string): Promise<boolean> {
    return this.writes.delete(collection, key)
  }

  add(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    return this.writes.add(collection, key, field, elements)
  }

  remove(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    return this.writes.remove(collection, key, field, elements)
  }

  append(collection: string, value: JsonValue, options?: AppendOptions): Promise<{ key: string }> {
    return this.writes.append(collection, value, options)
  }

  async collection(name: string): Promise<CollectionSettingsView> {
    this.assertOpen()
    assertCollectionName(name)
    return this.settings.view(name)
  }

  async configure(name: string, change: CollectionChange): Promise<CollectionSettingsView> {
    this.assertOpen()
    assertCollectionName(name)
    return this.settings.configure(name, change)
  }

  async conflicts(collection?: string): Promise<ConflictView[]> {
    this.assertOpen()
    return this.conflictDesk.list(collection === undefined ? this.appCollectionNames() : [collection], collection !== undefined)
  }

  resolve(collection: string, id: string, choice: ResolveChoice): Promise<ResolveResult> {
    return this.conflictDesk.resolve(collection, id, choice)
  }

  readonly history: Workspace['history'] = (collection, key, options) => this.historyDesk.history(collection, key, options)
  readonly restore: Workspace['restore'] = (collection, key, target) => this.historyDesk.restore(collection, key, target)

  async list(): Promise<CollectionInfo[]> {
    this.assertOpen()
    return this.registry.summaries()
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
    await this.registry.exportInto(result)
    return result
  }

  exportGit(dir: string, options?: GitExportOptions): Promise<GitExportReport> {
    return this.transfer.exportGit(dir, options)
  }

  importRecords(source: ImportSource, options?: ImportOptions): Promise<ImportReport> {
    return this.transfer.importRecords(source, options)
  }

  async check(collection?: string, options: { repair?: boolean } = {}): Promise<IndexCheckReport[]> {
    this.assertOpen()
    const { checkCollections } = await import('./index-check.js') // loaded on use: not on the open's path
    return checkCollections(this.registry, this.store, collection === undefined ? this.registry.appNames() : [collection], options.repair === true)
  }

  async status(): Promise<WorkspaceStatus> {
    const base = { info: await this.info(), peer: { ...this.peerState }, collections: await this.list() }
    return withSyncStatus(base, await this.selfRevocation(), await this.sync.status())
  }

  /** This device's own revocation, once it learned it (local store, never synced). */
  selfRevocation(): Promise<SelfRevocation | undefined> {
    return this.trust.selfRevocation()
  }

  /** Record, once and durably, that this device was revoked, and tell subscribers; false if it was known. */
  markRevokedSelf(r: SelfRevocation): Promise<boolean> {
    return this.trust.markRevokedSelf(r)
  }

  /** The peer of this home folder started in this process: `status` says so from now on. */
  peerStarted(pid: number, startedAt: number): void {
    this.peerState = { running: true, pid, startedAt, socket: this.socket }
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
    return this.registry.names()
  }

  /** The collections apps see (internal `_` collections left out). */
  appCollectionNames(): string[] {
    return this.registry.appNames()
  }

  get workspaceId(): string {
    return this.infoValue.workspaceId
  }

  /** SyncHost: the document of any collection, internal ones included, created if missing. */
  async openDoc(name: string): Promise<Y.Doc> {
    return (await this.registry.load(name)).collection.doc
  }

  /** SyncHost: does the collection exist (stored, or loaded in this process)? */
  hasCollection(name: string): boolean {
    return this.registry.has(name)
  }

  /** SyncHost: what this device asks peers for (sent as INTEREST). */
  interest(): InterestRule[] {
    return this.sync.selection.rules(this.registry.present())
  }

  async items(): Promise<ItemsView> {
    this.assertOpen()
    return this.sync.items()
  }

  setItems(change: ItemsChange): Promise<ItemsView> {
    this.assertOpen()
    return this.sync.setItems(change)
  }

  fetch(collection: string, options?: SyncCallOptions): Promise<FetchResult> {
    this.assertOpen()
    return this.sync.fetch(collection, options)
  }

  syncNow(options?: SyncCallOptions): Promise<SyncNowReport> {
    this.assertOpen()
    return this.sync.syncNow(options)
  }

  pause(options?: { forMs?: number }): ReturnType<WorkspaceSync['pause']> {
    this.assertOpen()
    return this.sync.pause(options)
  }

  resume(): Promise<{ resumed: boolean }> {
    this.assertOpen()
    return this.sync.resume()
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
    return this.registry.readyEntry(name)?.collection.doc
  }

  /** SyncHost: the collection's stored updates, to send whole to a device that has none of it (see CollectionLog.storedState). */
  async storedState(name: string): Promise<Uint8Array[] | undefined> {
    if (!this.hasCollection(name)) return undefined
    return (await this.registry.load(name)).log.storedState()
  }

  /** SyncHost: resolves when every update of this collection so far is durable. */
  async flushDoc(name: string): Promise<void> {
    const entry = await this.registry.loading(name)
    // Durable once acknowledged (the write-ahead file); without one, once LevelDB has it.
    await (this.store.wal === undefined ? entry?.log.flush() : entry?.lastWrite)
  }

  /**
   * Called with every collection document when it is loaded (the sync engine tracks them).
   * A listener must not change the document synchronously: the store subscribes to its
   * updates right after the listeners run.
   */
  onDocLoaded(listener: (e: DocLoaded) => void): () => void {
    for (const p of this.registry.loads())
      void p.then(
        (entry) => listener({ name: entry.collection.name, doc: entry.collection.doc }),
        () => undefined,
      )
    return this.emitter.on('doc-loaded', listener)
  }

  /** Emit a sync event to the workspace's subscribers (the mesh calls this). */
  emitEvent<K extends keyof WorkspaceEvents>(event: K, payload: WorkspaceEvents[K]): void {
    this.emitter.emit(event, payload as never)
  }

  /**
   * SyncHost: an untrusted peer (the VPS), and this device if it is one, exchange only the
   * collections that gate transport (`_members`, `_revoked`); everything else stays apart.
   * Between trusted devices, selective sync decides (items and local-only collections).
   */
  shares(peerId: string, collection: string): boolean {
    if (this.trust.isUntrusted(peerId) || this.trust.isUntrusted(this.infoValue.deviceId)) return TRANSPORT_COLLECTIONS.has(collection)
    return this.sync.selection.syncs(collection, this.hasCollection(collection))
  }

  /** SyncHost: nothing an untrusted peer sends is applied (it could otherwise rewrite the membership). */
  accepts(peerId: string): boolean {
    return !this.trust.isUntrusted(peerId)
  }

  members(): Promise<Record<string, Member>> {
    return this.trust.members()
  }

  /** A member that may hold the workspace keys and content: not revoked, not `untrusted`. */
  isTrusted(deviceId: string): Promise<boolean> {
    return this.trust.isTrusted(deviceId)
  }

  /** Whether a device is a member with role `untrusted` (known once the membership is loaded). */
  isUntrusted(deviceId: string): boolean {
    return this.trust.isUntrusted(deviceId)
  }

  /** A member (trusted or untrusted): added to the workspace and never revoked. */
  isMember(deviceId: string): Promise<boolean> {
    return this.trust.isMember(deviceId)
  }

  isRevoked(deviceId: string): Promise<boolean> {
    return this.trust.isRevoked(deviceId)
  }

  devices(): Promise<DeviceRecord[]> {
    return this.trust.devices()
  }

  /** Revoke a device for good. `device` is its id, a unique part of the id, or its name. */
  revoke(device: string, reason?: string): Promise<DeviceRecord> {
    return this.trust.revoke(device, reason)
  }

  revocations(): Promise<Record<string, Revocation>> {
    return this.trust.revocations()
  }

  /** Append to the synced audit log. */
  audit(type: AuditType, reason: string, peer?: string): Promise<void> {
    return this.trust.audit(type, reason, peer)
  }

  log(): Promise<AuditEntryView[]> {
    return this.trust.log()
  }

  addMember(deviceId: string, member: Member): Promise<void> {
    return this.trust.addMember(deviceId, member)
  }

  /** Apply a Yjs update to an internal collection (the membership received when joining). */
  async applyInternalUpdate(name: string, update: Uint8Array, origin: unknown): Promise<void> {
    const entry = await this.registry.load(name)
    Y.applyUpdate(entry.collection.doc, update, origin)
    await entry.lastWrite
  }

  /** State of an internal collection as one update (sent to a device that joins). */
  async encodeCollection(name: string): Promise<Uint8Array> {
    return Y.encodeStateAsUpdate((await this.registry.load(name)).collection.doc)
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
    for (const name of collection === undefined ? this.collectionNames() : [collection]) await (await this.registry.existing(name)).log.compactNow()
  }

  /** Storage figures of one collection (for status and benchmarks). */
  async storageStats(collection: string): Promise<{ bytes: number; logEntries: number; snapshotBytes: number; compactions: number }> {
    return (await this.registry.existing(collection)).log.stats()
  }

  /** Resolves when every update queued so far is durable. */
  flush(): Promise<void> {
    return this.registry.flush()
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
    for (const hook of [...this.closeHooks.splice(0), () => this.sync.offline.close()]) await hook()
    this.emitter.emit('closed', undefined)
    await this.historyDesk.close()
    await this.flush()
    await this.registry.close()
    await this.store.db.close()
    this.store.wal?.close()
  }

  private assertOpen(): void {
    if (this.closed) throw new KitsyncError('CONNECTION_CLOSED', 'the workspace is closed')
  }

  /** SyncHost: a collection this device does not hold yet, created from a peer's copy (see CollectionRegistry.adopt). */
  adopt(name: string, update: Uint8Array): Promise<Y.Doc | undefined> {
    return this.registry.adopt(name, update)
  }
}
