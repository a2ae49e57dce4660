import { debugLog } from '../core/debug-log.js'
import type { DeviceSyncStatus, PeerCounters, SyncStatusView } from '../core/sync-types.js'
import type { DeviceRecord, SelfRevocation, WorkspaceStatus } from '../core/workspace-types.js'
import type { DocStore } from '../store/doc-store.js'
import { PendingLedger, storedClocks } from '../sync/pending-ledger.js'
import type { SyncEngine } from '../sync/sync-engine.js'
import { deviceState, overallState } from '../sync/sync-state.js'

/**
 * `status().sync`: per device and overall, idle / syncing / paused / offline / error, the
 * pending count (sync/pending-ledger.ts), last sync and the last exchange's duration. The
 * running peer's engine events feed SyncActivity; the ledger is kept in the local store, one
 * value per device, so an offline device's pending count survives a restart.
 */

const log = debugLog('daemon:sync')

/** Local-store key of this device's own writes (clock per Yjs client, per collection). */
export const OWN_WRITES_KEY = 'sync-own-writes'
/** Local-store key of what one device is known to hold. */
export const knownKey = (peerId: string): string => `sync-known:${peerId}`

/** Progress and the last error per device, from the engine's events (while the peer runs). */
export class SyncActivity {
  private readonly progress = new Map<string, NonNullable<DeviceSyncStatus['progress']>>()
  private readonly errors = new Map<string, NonNullable<DeviceSyncStatus['error']>>()

  constructor(engine: SyncEngine) {
    engine.on('progress', ({ peerId, ...p }) => {
      if (p.collectionsDone >= p.collectionsTotal) this.progress.delete(peerId)
      else this.progress.set(peerId, p)
    })
    engine.on('connected', ({ peerId }) => void this.errors.delete(peerId))
    engine.on('offline', ({ peerId, error }) => {
      this.progress.delete(peerId)
      if (error !== undefined) this.errors.set(peerId, { code: error.code, message: error.message, at: Date.now() })
    })
  }

  progressOf(peerId: string): DeviceSyncStatus['progress'] {
    return this.progress.get(peerId)
  }

  errorOf(peerId: string): DeviceSyncStatus['error'] {
    return this.errors.get(peerId)
  }
}

/** Load the saved ledger (the own writes, and what each of `peerIds` holds); unreadable values are skipped. */
export async function loadLedger(store: DocStore, ledger: PendingLedger, peerIds: readonly string[]): Promise<PendingLedger> {
  const read = (key: string): Promise<unknown> =>
    store.getLocal(key).catch((err: unknown) => {
      log(`cannot read ${key}; the pending count starts from what the next exchange tells`, err)
      return undefined
    })
  const peers: Record<string, unknown> = {}
  for (const id of peerIds) peers[id] = await read(knownKey(id))
  ledger.restore(await read(OWN_WRITES_KEY), peers)
  return ledger
}

/**
 * Bring the own-write counts up to what the store holds (after a peer stopped without saving
 * them: kill -9, a crash). Reads the stored updates of each collection with own writes.
 */
export async function recountOwnWrites(store: DocStore, ledger: PendingLedger): Promise<void> {
  for (const name of ledger.ownCollections()) {
    // A collection that cannot be read keeps its saved count (too low until it is read again).
    const updates = await store.readStored(name).catch((err: unknown) => log(`cannot recount the pending writes of ${name}`, err))
    if (updates !== undefined && ledger.recount(name, storedClocks(updates))) log(`pending count of ${name} recounted after an unclean stop`)
  }
}

/** Save what changed in the ledger since the last save. */
export async function saveLedger(store: DocStore, ledger: PendingLedger): Promise<void> {
  for (const key of ledger.takeDirty()) {
    if (key === '') await store.putLocal(OWN_WRITES_KEY, ledger.ownSnapshot())
    else await store.putLocal(knownKey(key), ledger.peerSnapshot(key) ?? null)
  }
}

export interface SyncStatusInput {
  /** The other trusted devices of the workspace. */
  devices: readonly DeviceRecord[]
  paused: { since: number; until?: number } | undefined
  ledger: PendingLedger
  /** Whether a collection syncs with a device. */
  shares: (peerId: string, collection: string) => boolean
  counters: Record<string, PeerCounters>
  /** The running peer's engine and activity; absent: every device offline (as last saved). */
  running?: { engine: SyncEngine; activity: SyncActivity | undefined }
}

export function buildSyncStatus(input: SyncStatusInput): SyncStatusView {
  const paused = input.paused !== undefined
  const devices = input.devices.map((d): DeviceSyncStatus => {
    const id = d.peerId
    const session = input.running?.engine.sessionsWith(id).map((s) => s.getStats())[0]
    const progress = input.running?.activity?.progressOf(id)
    const error = input.running?.activity?.errorOf(id)
    const state = deviceState({ paused, session, exchanging: progress !== undefined, failed: error !== undefined })
    const shares = (c: string): boolean => input.shares(id, c)
    const c = input.counters[id]
    return {
      deviceId: id,
      name: d.name,
      state,
      ...(state === 'syncing' && progress !== undefined ? { progress } : {}),
      ...(error === undefined || state !== 'error' ? {} : { error }),
      pending: input.ledger.pending(id, shares),
      pendingByCollection: input.ledger.pendingByCollection(id, shares),
      ...pick(c, ['lastSeenAt', 'lastSyncAt', 'lastExchangeAt', 'lastExchangeMs']),
    }
  })
  return {
    state: overallState(
      paused,
      devices.map((d) => d.state),
    ),
    live: input.running !== undefined,
    ...(input.paused === undefined ? {} : { paused: input.paused }),
    pending: devices.reduce((n, d) => n + d.pending, 0),
    devices,
  }
}

function pick<K extends keyof PeerCounters>(c: PeerCounters | undefined, keys: readonly K[]): Partial<Pick<PeerCounters, K>> {
  const out: Partial<Pick<PeerCounters, K>> = {}
  if (c !== undefined) for (const k of keys) if (c[k] !== undefined) out[k] = c[k]
  return out
}

/** `status()` from its parts: the pause (also at the top, as before `sync` existed) and the sync view. */
export function withSyncStatus(
  base: Pick<WorkspaceStatus, 'info' | 'peer' | 'collections'>,
  revoked: SelfRevocation | undefined,
  sync: SyncStatusView,
): WorkspaceStatus {
  return { ...base, ...(revoked === undefined ? {} : { revoked }), ...(sync.paused === undefined ? {} : { paused: sync.paused }), sync }
}
