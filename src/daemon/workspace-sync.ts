import { abortable, throwIfAborted } from '../core/abort.js'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError } from '../core/errors.js'
import { assertCollectionName } from '../core/names.js'
import { applyItemsChange, ItemSelection, ON_DEMAND_PREFIXES, type ItemsChange, type SelectionSettings } from '../core/selection.js'
import type { FetchResult, ItemsView, ResetReport, SyncCallOptions, SyncNowReport, SyncStatsView } from '../core/sync-types.js'
import type { DocStore } from '../store/doc-store.js'
import { readWorkspaceConfig, writeWorkspaceConfig, type HomePaths } from '../store/home.js'
import { readSnapshot, SyncStats } from '../sync/sync-stats.js'
import type { SyncEngine } from '../sync/sync-engine.js'

/** Key of the saved sync counters in the local (never synced) part of the store. */
export const STATS_KEY = 'sync-stats'

const log = debugLog('daemon:sync')

/** What WorkspaceSync needs from the workspace (LocalWorkspace). */
export interface WorkspaceSyncHost {
  readonly paths: HomePaths | undefined
  readonly store: DocStore
  hasCollection(name: string): boolean
  appCollectionNames(): string[]
  members(): Promise<Record<string, { name: string }>>
  getAll(collection: string): Promise<Record<string, unknown>>
}

/** What the running peer adds (see PeerSync). */
export interface RunningSync {
  readonly engine: SyncEngine
  /** `signal` aborted: rejects with ABORTED at once, and stops dialing and waiting. */
  syncNow(timeoutMs: number, signal?: AbortSignal): Promise<SyncNowReport>
  pull(collection: string, timeoutMs: number, signal?: AbortSignal): Promise<{ peerId: string; complete: boolean }[]>
  /** Forget per-peer state and restart every session with a full exchange; returns how many. */
  reset(): Promise<number>
}

export const DEFAULT_SYNC_NOW_MS = 15_000

/**
 * The sync settings and state of one workspace, with or without a running peer: the item
 * selection (workspace.json), the counters (saved in the store), and, when the peer runs,
 * `sync now`, fetch and reset through it.
 */
export class WorkspaceSync {
  selection = new ItemSelection()
  running: RunningSync | undefined
  private persisting: Promise<void> = Promise.resolve()

  constructor(private readonly host: WorkspaceSyncHost) {}

  /** Load the selection from the workspace settings (tolerates bad entries by refusing them loudly). */
  configure(settings: SelectionSettings): void {
    this.selection = new ItemSelection(settings)
  }

  items(): ItemsView {
    const collections = this.host.appCollectionNames().map((name) => {
      const reason = this.selection.reason(name, true)
      return { name, syncs: this.selection.syncs(name, true), reason }
    })
    return {
      items: this.selection.items === undefined ? null : [...this.selection.items],
      localOnly: [...this.selection.localOnlyPatterns],
      onDemand: [...ON_DEMAND_PREFIXES],
      collections,
    }
  }

  async setItems(change: ItemsChange): Promise<ItemsView> {
    const current = { items: this.selection.items, localOnly: this.selection.localOnlyPatterns }
    const next = applyItemsChange(current, change)
    const selection = new ItemSelection(next)
    if (this.host.paths !== undefined) {
      const config = await readWorkspaceConfig(this.host.paths)
      if (config === undefined) throw new KitsyncError('HOME_UNREADABLE', `${this.host.paths.workspace} is missing`)
      const { items: _items, localOnly: _localOnly, ...rest } = config
      await writeWorkspaceConfig(this.host.paths, {
        ...rest,
        ...(next.items === undefined ? {} : { items: next.items }),
        ...(next.localOnly.length === 0 ? {} : { localOnly: next.localOnly }),
      })
    }
    this.selection = selection
    await this.running?.engine.refreshInterest()
    return this.items()
  }

  async fetch(collection: string, options: SyncCallOptions = {}): Promise<FetchResult> {
    assertCollectionName(collection)
    throwIfAborted(options.signal, 'fetch')
    const added = !this.selection.syncs(collection, false)
    if (this.selection.localOnly(collection)) {
      throw new KitsyncError(
        'INVALID_ARGUMENT',
        `${collection} is local-only on this device; remove it from local-only first (kitsync items remove ${collection} --local-only)`,
      )
    }
    if (added) await this.setItems({ items: { add: [collection] } })
    let peers: { peerId: string; complete: boolean }[] = []
    let note: string | undefined
    if (this.running === undefined) note = 'no peer is running: it is pulled when kitsync peer start runs'
    else {
      // Aborted while pulling: the collection stays in the items (pulled when a device connects).
      peers = await abortable(this.running.pull(collection, options.timeoutMs ?? DEFAULT_SYNC_NOW_MS, options.signal), options.signal, 'fetch')
      if (peers.length === 0) note = 'no device is connected: it is pulled when one is'
    }
    const present = this.host.hasCollection(collection)
    const records = present ? Object.keys(await this.host.getAll(collection)).length : 0
    return { collection, added, present, records, peers, ...(note === undefined ? {} : { note }) }
  }

  async syncNow(options: SyncCallOptions = {}): Promise<SyncNowReport> {
    if (this.running === undefined) throw new KitsyncError('PEER_NOT_RUNNING', 'no peer is running: start one with kitsync peer start')
    throwIfAborted(options.signal, 'sync now')
    const report = await abortable(this.running.syncNow(options.timeoutMs ?? DEFAULT_SYNC_NOW_MS, options.signal), options.signal, 'sync now')
    await this.persist()
    return report
  }

  async stats(): Promise<SyncStatsView> {
    // Without the members the figures are shown by device id, not name.
    const members = await this.host.members().catch((err: unknown) => {
      log('cannot read the members for the names in stats', err)
      return {} as Record<string, { name: string }>
    })
    const names = Object.fromEntries(Object.entries(members).map(([id, m]) => [id, m.name]))
    if (this.running !== undefined) return { ...this.running.engine.stats.snapshot(), live: true, names }
    const saved = new SyncStats(Date.now)
    saved.load(await this.host.store.getLocal(STATS_KEY))
    return { ...saved.snapshot(), live: false, names }
  }

  async reset(): Promise<ResetReport> {
    const cleared = ['sync counters (kitsync stats)']
    let sessionsRestarted = 0
    if (this.running !== undefined) {
      this.running.engine.stats.reset()
      sessionsRestarted = await this.running.reset()
      cleared.push('last seen and last sync of every device', 'redial backoff', 'sync sessions (reopened with a full exchange)')
    }
    const fresh = this.running?.engine.stats ?? new SyncStats(Date.now)
    await this.host.store.putLocal(STATS_KEY, fresh.snapshot())
    fresh.dirty = false
    return { cleared, sessionsRestarted }
  }

  /** Save the running peer's counters if they changed (periodically and on stop). */
  persist(): Promise<void> {
    const stats = this.running?.engine.stats
    if (stats === undefined || !stats.dirty) return this.persisting
    stats.dirty = false
    const snapshot = stats.snapshot()
    this.persisting = this.persisting
      .then(() => this.host.store.putLocal(STATS_KEY, snapshot))
      .catch((err: unknown) => {
        log('cannot save the sync counters; the next save tries again', err)
        stats.dirty = true
      })
    return this.persisting
  }

  /** Continue counting from what the peer saved when it last ran. */
  async restore(stats: SyncStats): Promise<void> {
    // Counters that cannot be read start again from zero: they are figures, not data.
    const saved = readSnapshot(
      await this.host.store.getLocal(STATS_KEY).catch((err: unknown) => {
        log('cannot read the saved sync counters; counting from zero', err)
        return undefined
      }),
    )
    if (saved !== undefined) stats.load(saved)
    stats.dirty = false
  }
}
