import { changeStream } from '../core/change-stream.js'
import { TypedEmitter } from '../core/emitter.js'
import { assertJsonValue, type JsonValue } from '../core/json.js'
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
  IndexCheckReport,
  SetOptions,
  Workspace,
  WorkspaceEvents,
  WorkspaceExport,
  WorkspaceInfo,
  WorkspaceStatus,
  SyncPause,
} from '../core/workspace-types.js'
import { WORKSPACE_EVENTS } from '../core/workspace-types.js'
import type { ItemsChange } from '../core/selection.js'
import type { FetchResult, ItemsView, ResetReport, SyncCallOptions, SyncNowReport, SyncStatsView } from '../core/sync-types.js'
import type { ControlClient } from './control-client.js'
import { resolve } from 'node:path'
import type { GitExportOptions, GitExportReport, ImportOptions, ImportReport, ImportSource } from '../core/transfer-types.js'
import type { HistoryEntry, HistoryOptions, RestoreResult, RestoreTarget } from '../core/history-types.js'

/** A workspace reached through the control socket of the peer that owns the store. */
export class RemoteWorkspace implements Workspace {
  readonly mode = 'peer' as const
  private readonly emitter = new TypedEmitter<WorkspaceEvents & { closed: undefined }>()
  private watchId: number | undefined
  private watching: Promise<void> | undefined

  constructor(readonly client: ControlClient) {
    client.onEvent((event, data) => {
      if ((WORKSPACE_EVENTS as readonly string[]).includes(event)) {
        const { watch: _watch, ...payload } = data as { watch: number }
        this.emitter.emit(event as keyof WorkspaceEvents, payload as never)
      } else if (event === 'closed') {
        this.emitter.emit('closed', undefined)
      }
    })
  }

  info(): Promise<WorkspaceInfo> {
    return this.client.request('info') as Promise<WorkspaceInfo>
  }

  async get(collection: string, key: string): Promise<JsonValue | undefined> {
    const r = (await this.client.request('get', { collection, key })) as { found: boolean; value?: JsonValue }
    return r.found ? r.value : undefined
  }

  getAll(collection: string): Promise<Record<string, JsonValue>> {
    return this.client.request('getAll', { collection }) as Promise<Record<string, JsonValue>>
  }

  async set(collection: string, key: string, value: JsonValue, options: SetOptions = {}): Promise<void> {
    assertJsonValue(value)
    await this.client.request('set', { collection, key, value, ...(options.field === undefined ? {} : { field: options.field }) })
  }

  delete(collection: string, key: string): Promise<boolean> {
    return this.client.request('delete', { collection, key }) as Promise<boolean>
  }

  list(): Promise<CollectionInfo[]> {
    return this.client.request('list') as Promise<CollectionInfo[]>
  }

  export(): Promise<WorkspaceExport> {
    return this.client.request('export') as Promise<WorkspaceExport>
  }

  /** The peer writes and commits: the folder is resolved here, against this process's working folder. */
  exportGit(dir: string, options: GitExportOptions = {}): Promise<GitExportReport> {
    return this.client.request('exportGit', { dir: resolve(dir), ...options }) as Promise<GitExportReport>
  }

  /** The source goes to the peer in one message (up to 64 MiB of JSON); a signal cannot cross the socket. */
  importRecords(source: ImportSource, options: ImportOptions = {}): Promise<ImportReport> {
    return this.client.request('importRecords', { source, dryRun: options.dryRun === true, prune: options.prune === true }) as Promise<ImportReport>
  }

  devices(): Promise<DeviceRecord[]> {
    return this.client.request('devices') as Promise<DeviceRecord[]>
  }

  revoke(device: string, reason?: string): Promise<DeviceRecord> {
    return this.client.request('revoke', { device, ...(reason === undefined ? {} : { reason }) }) as Promise<DeviceRecord>
  }

  log(): Promise<AuditEntryView[]> {
    return this.client.request('log') as Promise<AuditEntryView[]>
  }

  async add(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    await this.client.request('add', { collection, key, field, elements })
  }

  async remove(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    await this.client.request('remove', { collection, key, field, elements })
  }

  append(collection: string, value: JsonValue, options: AppendOptions = {}): Promise<{ key: string }> {
    assertJsonValue(value)
    return this.client.request('append', { collection, value, ...options }) as Promise<{ key: string }>
  }

  collection(name: string): Promise<CollectionSettingsView> {
    return this.client.request('collection', { name }) as Promise<CollectionSettingsView>
  }

  configure(name: string, change: CollectionChange): Promise<CollectionSettingsView> {
    return this.client.request('configure', { name, change }) as Promise<CollectionSettingsView>
  }

  conflicts(collection?: string): Promise<ConflictView[]> {
    return this.client.request('conflicts', collection === undefined ? {} : { collection }) as Promise<ConflictView[]>
  }

  resolve(collection: string, id: string, choice: ResolveChoice): Promise<ResolveResult> {
    return this.client.request('resolve', { collection, id, ...choice }) as Promise<ResolveResult>
  }

  history(collection: string, key?: string, options: HistoryOptions = {}): Promise<HistoryEntry[]> {
    return this.client.request('history', { collection, ...(key === undefined ? {} : { key }), ...options }) as Promise<HistoryEntry[]>
  }

  restore(collection: string, key: string, target: RestoreTarget): Promise<RestoreResult> {
    return this.client.request('restore', { collection, key, ...target }) as Promise<RestoreResult>
  }

  status(): Promise<WorkspaceStatus> {
    return this.client.request('status') as Promise<WorkspaceStatus>
  }

  items(): Promise<ItemsView> {
    return this.client.request('items') as Promise<ItemsView>
  }

  setItems(change: ItemsChange): Promise<ItemsView> {
    return this.client.request('setItems', { ...change }) as Promise<ItemsView>
  }

  // Aborted: stops waiting for the peer's answer (see ControlClient.request); the peer itself
  // carries on until its own timeout, as the control protocol has no cancel.
  fetch(collection: string, options: SyncCallOptions = {}): Promise<FetchResult> {
    const { signal, ...params } = options
    return this.client.request('fetch', { collection, ...params }, { signal, what: 'fetch' }) as Promise<FetchResult>
  }

  pause(options: { forMs?: number } = {}): Promise<SyncPause> {
    return this.client.request('pause', options.forMs === undefined ? {} : { forMs: options.forMs }) as Promise<SyncPause>
  }

  resume(): Promise<{ resumed: boolean }> {
    return this.client.request('resume') as Promise<{ resumed: boolean }>
  }

  syncNow(options: SyncCallOptions = {}): Promise<SyncNowReport> {
    const { signal, ...params } = options
    return this.client.request('syncNow', { ...params }, { signal, what: 'sync now' }) as Promise<SyncNowReport>
  }

  stats(): Promise<SyncStatsView> {
    return this.client.request('stats') as Promise<SyncStatsView>
  }

  resetSync(): Promise<ResetReport> {
    return this.client.request('reset') as Promise<ResetReport>
  }

  check(collection?: string, options: { repair?: boolean } = {}): Promise<IndexCheckReport[]> {
    return this.client.request('check', { ...(collection === undefined ? {} : { collection }), repair: options.repair === true }) as Promise<IndexCheckReport[]>
  }

  on<K extends keyof WorkspaceEvents>(event: K, listener: (payload: WorkspaceEvents[K]) => void): () => void {
    void this.ensureWatching()
    return this.emitter.on(event, listener)
  }

  changes(options: ChangesOptions = {}): AsyncIterable<ChangeEvent> {
    return changeStream(this.emitter, options, () => this.ensureWatching())
  }

  async close(): Promise<void> {
    this.client.close()
  }

  /** One watch subscription per connection, shared by all listeners; filtering is local. */
  private ensureWatching(): Promise<void> {
    this.watching ??= (async () => {
      const r = (await this.client.request('watch', { sync: true })) as { watching: number }
      this.watchId = r.watching
    })()
    return this.watching
  }

  get watchSubscription(): number | undefined {
    return this.watchId
  }
}
