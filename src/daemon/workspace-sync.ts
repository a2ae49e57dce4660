import { abortable, throwIfAborted } from '../core/abort.js'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError } from '../core/errors.js'
import { assertCollectionName } from '../core/names.js'
import { applyItemsChange, ItemSelection, ON_DEMAND_PREFIXES, type ItemsChange, type SelectionSettings } from '../core/selection.js'
import type { FetchResult, ItemsView, ResetReport, SyncCallOptions, SyncNowReport, SyncStatsView, SyncStatusView } from '../core/sync-types.js'
import type { DeviceRecord, SyncPause, WorkspaceEvents } from '../core/workspace-types.js'
import type { DocStore } from '../store/doc-store.js'
import { readWorkspaceConfig, writeWorkspaceConfig, type HomePaths } from '../store/home.js'
import { readSnapshot, SyncStats } from '../sync/sync-stats.js'
import type { SyncEngine } from '../sync/sync-engine.js'
import { PendingLedger } from '../sync/pending-ledger.js'
import { OfflineWrites } from './offline-writes.js'
import { buildSyncStatus, loadLedger, OWN_WRITES_KEY, recountOwnWrites, saveLedger, type SyncActivity } from './sync-status.js'

/** Key of the saved sync counters in the local (never synced) part of the store. */
export const STATS_KEY = 'sync-stats'
/**
 * Key of the running peer's mark in the local store: set at its start, cleared after the last
 * save of a clean stop. Found set at a start: the last run ended without saving (kill -9, a
 * crash), so the own-write counts of the pending ledger are recounted from the stored state.
 */
export const LEDGER_RUNNING_KEY = 'sync-ledger-running'
/** Key of the sync pause (kitsync sync pause) in the local store: kept across a restart. */
export const PAUSE_KEY = 'sync-pause'

const log = debugLog('daemon:sync')

/** What WorkspaceSync needs from the workspace (LocalWorkspace). */
export interface WorkspaceSyncHost {
  readonly paths: HomePaths | undefined
  readonly store: DocStore
  hasCollection(name: string): boolean
  appCollectionNames(): string[]
  members(): Promise<Record<string, { name: string }>>
  getAll(collection: string): Promise<Record<string, unknown>>
  emitEvent<K extends keyof WorkspaceEvents>(event: K, payload: WorkspaceEvents[K]): void
  devices(): Promise<DeviceRecord[]>
  shares(peerId: string, collection: string): boolean
}

/** What the running peer adds (see PeerSync). */
export interface RunningSync {
  readonly engine: SyncEngine
  /** `signal` aborted: rejects with ABORTED at once, and stops dialing and waiting. */
  syncNow(timeoutMs: number, signal?: AbortSignal): Promise<SyncNowReport>
  pull(collection: string, timeoutMs: number, signal?: AbortSignal): Promise<{ peerId: string; complete: boolean }[]>
  /** Forget per-peer state and restart every session with a full exchange; returns how many. */
  reset(): Promise<number>
  /** Exchange with no one (close the sessions, dial no one, refuse sync streams) until resume. */
  pause(): void
  /** Exchange again, dialing every device now. */
  resume(): void
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
  /** The running peer's progress and errors per device (see sync-status.ts). */
  activity: SyncActivity | undefined
  private persisting: Promise<void> = Promise.resolve()
  private pauseTimer: NodeJS.Timeout | undefined
  /** This device's writes while no peer runs, counted as pending (see offline-writes.ts). */
  readonly offline: OfflineWrites

  constructor(private readonly host: WorkspaceSyncHost) {
    this.offline = new OfflineWrites({
      store: () => host.store,
      running: () => this.running !== undefined,
      ownKey: OWN_WRITES_KEY,
      markKey: LEDGER_RUNNING_KEY,
    })
  }

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

  /** The pause in force, if any (one whose time has passed is over). */
  async paused(): Promise<SyncPause | undefined> {
    const saved = readPause(await this.host.store.getLocal(PAUSE_KEY))
    if (saved?.until !== undefined && saved.until <= Date.now()) return undefined
    return saved
  }

  async pause(options: { forMs?: number } = {}): Promise<SyncPause> {
    const forMs = options.forMs
    if (forMs !== undefined && (typeof forMs !== 'number' || !Number.isFinite(forMs) || forMs <= 0))
      throw new KitsyncError('INVALID_ARGUMENT', 'forMs must be a positive number of milliseconds')
    const since = Date.now()
    const pause: SyncPause = forMs === undefined ? { since } : { since, until: since + forMs }
    await this.host.store.putLocal(PAUSE_KEY, pause)
    this.running?.pause()
    this.schedule(pause)
    this.host.emitEvent('sync:paused', pause)
    return pause
  }

  async resume(by: 'command' | 'timer' = 'command'): Promise<{ resumed: boolean }> {
    clearTimeout(this.pauseTimer)
    this.pauseTimer = undefined
    const raw = readPause(await this.host.store.getLocal(PAUSE_KEY))
    if (raw === undefined) return { resumed: false }
    await this.host.store.putLocal(PAUSE_KEY, null)
    this.running?.resume()
    this.host.emitEvent('sync:resumed', { at: Date.now(), by })
    return { resumed: true }
  }

  /** The peer starts: a pause on record holds (or ends now if its time passed while stopped). */
  async applyPause(): Promise<void> {
    const saved = readPause(await this.host.store.getLocal(PAUSE_KEY))
    if (saved === undefined) return
    if (saved.until !== undefined && saved.until <= Date.now()) {
      await this.host.store.putLocal(PAUSE_KEY, null)
      return
    }
    this.running?.pause()
    this.schedule(saved)
  }

  /** Stop the `--for` timer (the workspace closes). */
  stopPauseTimer(): void {
    clearTimeout(this.pauseTimer)
    this.pauseTimer = undefined
  }

  private schedule(pause: SyncPause): void {
    clearTimeout(this.pauseTimer)
    this.pauseTimer = undefined
    if (pause.until === undefined) return
    // setTimeout's longest wait is about 24.8 days; a longer pause checks again then.
    const wait = Math.min(Math.max(0, pause.until - Date.now()), 2 ** 31 - 1)
    this.pauseTimer = setTimeout(() => {
      this.pauseTimer = undefined
      if (pause.until !== undefined && pause.until > Date.now()) this.schedule(pause)
      else void this.resume('timer').catch((err: unknown) => log('cannot resume sync at the end of the pause', err))
    }, wait)
    this.pauseTimer.unref()
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

  /** Where sync stands with each device and overall (status().sync). */
  async status(): Promise<SyncStatusView> {
    const devices = (await this.host.devices()).filter((d) => !d.self && d.state === 'trusted' && d.role === 'trusted')
    const engine = this.running?.engine
    const ledger = engine?.ledger ?? (await this.savedLedger(devices.map((d) => d.peerId)))
    const stats = await this.stats()
    return buildSyncStatus({
      devices,
      paused: await this.paused(),
      ledger,
      shares: (peerId, collection) => this.host.shares(peerId, collection),
      counters: stats.peers,
      ...(engine === undefined ? {} : { running: { engine, activity: this.activity } }),
    })
  }

  /**
   * The ledger as the peer saved it, with no peer running (this process holds the store). A
   * peer that stopped without saving (its mark is still set) may have saved too few own writes:
   * they are recounted from the store, in memory (the next peer start does it for good).
   */
  private async savedLedger(peerIds: readonly string[]): Promise<PendingLedger> {
    const ledger = await loadLedger(this.host.store, new PendingLedger(), peerIds)
    const unclean = (await this.host.store.getLocal(LEDGER_RUNNING_KEY).catch((err: unknown) => log('cannot read the ledger mark', err))) ?? null
    if (unclean !== null) await recountOwnWrites(this.host.store, ledger)
    this.offline.addTo(ledger)
    return ledger
  }

  /**
   * The running peer starts: continue the pending counts from what it saved; after a run that
   * ended without saving, recount the own writes from the collections' stored state. A client
   * of this device's writes not counted before is saved at once (once per document load), so a
   * kill -9 loses no own write from the count.
   */
  async restoreLedger(engine: SyncEngine): Promise<void> {
    const devices = await this.host.devices()
    const ledger = engine.ledger
    await loadLedger(
      this.host.store,
      ledger,
      devices.filter((d) => !d.self).map((d) => d.peerId),
    )
    this.offline.addTo(ledger)
    const unclean = (await this.host.store.getLocal(LEDGER_RUNNING_KEY).catch((err: unknown) => log('cannot read the ledger mark', err))) ?? null
    if (unclean !== null) {
      await recountOwnWrites(this.host.store, ledger)
      await saveLedger(this.host.store, ledger)
    }
    await this.host.store.putLocal(LEDGER_RUNNING_KEY, { since: Date.now() })
    ledger.onNewClient = () => void this.persist()
  }

  /** The running peer stops: the last save, then the mark that says it was clean. */
  async closeLedger(): Promise<void> {
    const ledger = this.running?.engine.ledger
    if (ledger !== undefined) ledger.onNewClient = undefined
    await this.persist()
    await this.host.store.putLocal(LEDGER_RUNNING_KEY, null)
  }

  /**
   * Save the running peer's counters and pending ledger if they changed (periodically and on stop).
   * `ledgerOnly`: the pending ledger alone (when a device goes offline: the counters wait for the
   * periodic save, as a session that keeps reopening would otherwise write them at each end).
   */
  persist(ledgerOnly = false): Promise<void> {
    const ledger = this.running?.engine.ledger
    if (ledger !== undefined) {
      this.persisting = this.persisting
        .then(() => saveLedger(this.host.store, ledger))
        .catch((err: unknown) => log('cannot save the pending ledger; the next exchange tells again', err))
    }
    const stats = this.running?.engine.stats
    if (ledgerOnly || stats === undefined || !stats.dirty) return this.persisting
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

function readPause(value: unknown): SyncPause | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { since, until } = value as { since?: unknown; until?: unknown }
  if (typeof since !== 'number') return undefined
  return typeof until === 'number' ? { since, until } : { since }
}
