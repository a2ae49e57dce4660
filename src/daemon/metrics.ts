import { lstat, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import { debugLog } from '../core/debug-log.js'
import type { SyncCounters, SyncStatsView, SyncStatusView } from '../core/sync-types.js'
import type { CollectionInfo, NetworkStatus, SyncOfflineEvent } from '../core/workspace-types.js'

const log = debugLog('daemon:metrics')

/** Every metric name starts with this (prom-client's default process metrics too). */
export const METRIC_PREFIX = 'kitsync_'

/** How often the event loop delay is sampled for kitsync_nodejs_eventloop_lag_*. */
const EVENT_LOOP_SAMPLE_MS = 200

/** What the metrics are read from, at each scrape (the running peer). */
export interface MetricsSource {
  readonly deviceId: string
  readonly version: string
  stats(): Promise<SyncStatsView>
  /** Sync state and pending counts per device (status().sync), offline devices included. */
  syncStatus(): Promise<SyncStatusView>
  list(): Promise<CollectionInfo[]>
  /** A loaded collection's log: entries not yet compacted, compactions since it was opened. */
  storageStats(collection: string): Promise<{ logEntries: number; compactions: number }>
  network(): Promise<NetworkStatus>
  /** Files of the store on disk, measured at each scrape: LevelDB's folder, snapshot files, the write-ahead file. */
  readonly storeParts: Record<string, string>
  onSyncOffline(listener: (e: SyncOfflineEvent) => void): () => void
}

/** The sync counters exposed per device and per collection (SyncCounters field -> metric suffix). */
const COUNTERS: [keyof SyncCounters, string, string][] = [
  ['bytesIn', 'bytes_received_total', 'bytes of sync frames received'],
  ['bytesOut', 'bytes_sent_total', 'bytes of sync frames sent'],
  ['framesIn', 'frames_received_total', 'sync frames received'],
  ['framesOut', 'frames_sent_total', 'sync frames sent (a live update is one frame, merged per tick)'],
  ['updatesApplied', 'updates_applied_total', 'updates received that changed something here'],
  ['updatesSent', 'updates_sent_total', "sends of this device's updates (a live update, or the answer to a state vector)"],
  ['updatesDropped', 'updates_dropped_total', 'updates received for a collection this device does not sync'],
  ['syncs', 'syncs_total', 'completed exchanges'],
  ['sessions', 'sessions_total', 'sync sessions opened'],
  ['conflicts', 'conflicts_total', 'conflicts detected'],
]

/**
 * The Prometheus metrics of a running peer (GET /metrics). Figures are read from the peer at
 * each scrape; the sync counters are those of `kitsync stats` (since the last `reset`: a reset
 * shows as a counter reset, which rate() handles). Pending per device is status's count
 * (sync/pending-ledger.ts): this device's writes the device is not known to hold, also for an
 * offline device; `kitsync_device_unsent_bytes` is what is queued for a connected one.
 */
export class PeerMetrics {
  readonly registry = new Registry()
  private readonly perDevice = new Map<keyof SyncCounters, Counter>()
  private readonly perCollection = new Map<keyof SyncCounters, Counter>()
  private readonly gauges
  private readonly syncErrors: Counter
  private readonly compactions: Counter
  private readonly offSyncOffline: () => void
  private scraping: Promise<unknown> = Promise.resolve()
  /** Event streams open on the HTTP API (set by its routes). */
  eventStreams = 0

  constructor(private readonly source: MetricsSource) {
    const registers = [this.registry]
    // The event loop monitor samples every EVENT_LOOP_SAMPLE_MS: prom-client's 10 ms doubled an idle peer's CPU time (measured).
    collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS })
    const gauge = (name: string, help: string, labelNames: string[] = []): Gauge => new Gauge({ name: METRIC_PREFIX + name, help, labelNames, registers })
    for (const [field, suffix, help] of COUNTERS) {
      this.perDevice.set(field, new Counter({ name: `${METRIC_PREFIX}device_${suffix}`, help: `Per device: ${help}`, labelNames: ['device'], registers }))
      this.perCollection.set(
        field,
        new Counter({ name: `${METRIC_PREFIX}collection_${suffix}`, help: `Per collection: ${help}`, labelNames: ['collection'], registers }),
      )
    }
    this.compactions = new Counter({
      name: `${METRIC_PREFIX}collection_compactions_total`,
      help: 'Compactions of a collection (its log folded into its snapshot) since the peer started',
      labelNames: ['collection'],
      registers,
    })
    this.syncErrors = new Counter({
      name: `${METRIC_PREFIX}sync_errors_total`,
      help: 'Sync sessions that ended with an error since the peer started, by error code',
      labelNames: ['code'],
      registers,
    })
    this.offSyncOffline = source.onSyncOffline((e) => {
      if (e.reason !== undefined) this.syncErrors.inc({ code: e.reason.code })
    })
    this.gauges = {
      info: gauge('info', 'This peer: its kitsync version and device id (always 1)', ['version', 'device']),
      connected: gauge('devices_connected', 'Devices connected now'),
      device: gauge('device_info', 'Each device of the workspace with its name and state (always 1)', ['device', 'name', 'state']),
      unsent: gauge('device_unsent_bytes', 'Bytes queued for a connected device and not yet sent', ['device']),
      pending: gauge(
        'device_pending_updates',
        "This device's writes (Yjs operations) a device is not known to hold, as kitsync status counts them; offline: what goes when it is back",
        ['device'],
      ),
      pendingByCollection: gauge('device_collection_pending_updates', 'kitsync_device_pending_updates per collection (collections with some pending)', [
        'device',
        'collection',
      ]),
      syncState: gauge('device_sync_state', "Each device's sync state (idle, syncing, paused, offline, error) as a label (always 1)", ['device', 'state']),
      lastSync: gauge('device_last_sync_timestamp_seconds', 'When data last moved either way with a device (Unix time)', ['device']),
      paused: gauge('sync_paused', '1 while sync is paused (kitsync sync pause), else 0'),
      records: gauge('collection_records', 'Records in a collection', ['collection']),
      stored: gauge('collection_stored_bytes', 'Bytes a collection takes in the store (snapshot plus update log)', ['collection']),
      conflicts: gauge('conflicts_open', 'Conflicts waiting for kitsync resolve', ['collection']),
      logEntries: gauge('collection_log_entries', "Updates in a collection's log, not yet compacted into its snapshot", ['collection']),
      storeSize: gauge('store_size_bytes', 'Bytes of the store on disk, by part (leveldb, snapshots, wal)', ['part']),
      streams: gauge('http_event_streams', 'Event streams open on the HTTP API'),
    }
  }

  /** The metrics in the text exposition format. Scrapes run one at a time. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    const run = this.scraping.then(async () => {
      await this.refresh()
      return { contentType: this.registry.contentType, text: await this.registry.metrics() }
    })
    this.scraping = run.catch(() => undefined)
    return run
  }

  private async refresh(): Promise<void> {
    const [stats, collections, network, sync] = await Promise.all([this.source.stats(), this.source.list(), this.source.network(), this.source.syncStatus()])
    const g = this.gauges
    for (const m of Object.values(g)) m.reset()
    g.info.set({ version: this.source.version, device: this.source.deviceId }, 1)
    g.connected.set(network.connected)
    for (const d of network.devices) {
      g.device.set({ device: d.peerId, name: d.name, state: d.state }, 1)
      if (d.unsentBytes !== undefined) g.unsent.set({ device: d.peerId }, d.unsentBytes)
    }
    g.paused.set(sync.paused === undefined ? 0 : 1)
    for (const d of sync.devices) {
      g.pending.set({ device: d.deviceId }, d.pending)
      for (const [collection, n] of Object.entries(d.pendingByCollection)) g.pendingByCollection.set({ device: d.deviceId, collection }, n)
      g.syncState.set({ device: d.deviceId, state: d.state }, 1)
      if (d.lastSyncAt !== undefined) g.lastSync.set({ device: d.deviceId }, d.lastSyncAt / 1000)
    }
    for (const c of collections) {
      g.records.set({ collection: c.name }, c.records)
      g.stored.set({ collection: c.name }, c.bytes)
      g.conflicts.set({ collection: c.name }, c.openConflicts ?? 0)
    }
    this.compactions.reset()
    for (const c of collections) {
      if (c.error !== undefined) continue
      // A collection that cannot be read now has no log figures; list() says why.
      const s = await this.source.storageStats(c.name).catch((err: unknown) => log(`no storage figures for ${c.name}`, err))
      if (s === undefined) continue
      g.logEntries.set({ collection: c.name }, s.logEntries)
      this.compactions.inc({ collection: c.name }, s.compactions)
    }
    for (const [part, path] of Object.entries(this.source.storeParts)) g.storeSize.set({ part }, await sizeOnDisk(path))
    g.streams.set(this.eventStreams)
    for (const [field, counter] of this.perDevice) {
      counter.reset()
      for (const [device, c] of Object.entries(stats.peers)) counter.inc({ device }, c[field] ?? 0)
    }
    for (const [field, counter] of this.perCollection) {
      counter.reset()
      for (const [collection, c] of Object.entries(stats.collections)) counter.inc({ collection }, c[field] ?? 0)
    }
  }

  close(): void {
    this.offSyncOffline()
    this.registry.clear()
  }
}

/** Bytes of a file, or of every file under a folder; 0 when it does not exist. */
export async function sizeOnDisk(path: string): Promise<number> {
  let st
  try {
    st = await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
  if (!st.isDirectory()) return st.size
  let total = 0
  for (const entry of await readdir(path, { withFileTypes: true })) {
    // A file LevelDB removes between the listing and its lstat counts as nothing.
    total += await sizeOnDisk(join(path, entry.name)).catch((err: unknown) => {
      log(`cannot measure ${join(path, entry.name)}`, err)
      return 0
    })
  }
  return total
}
