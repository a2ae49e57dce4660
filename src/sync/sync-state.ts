import type { SyncState } from '../core/sync-types.js'

/**
 * The state of sync with one device and overall (kitsync status), from what the engine knows
 * (pure). Paused wins; without a session a device is offline, or `error` when its last session
 * ended with one; with a session it is syncing until the session said hello, caught up, sent
 * what it had queued and finished any exchange running, then idle.
 */

export interface SessionFacts {
  ready: boolean
  caughtUp: boolean
  unsentBytes: number
}

export interface DeviceFacts {
  paused: boolean
  /** The open session with the device, if any. */
  session: SessionFacts | undefined
  /** An exchange with progress is running (sync now, a catch-up). */
  exchanging: boolean
  /** The last session ended with an error (and none said hello since). */
  failed: boolean
}

export function deviceState(f: DeviceFacts): SyncState {
  if (f.paused) return 'paused'
  if (f.session === undefined) return f.failed ? 'error' : 'offline'
  if (!f.session.ready || !f.session.caughtUp || f.session.unsentBytes > 0 || f.exchanging) return 'syncing'
  return 'idle'
}

/**
 * Overall: paused; else error if any device is in error; syncing if any syncs; idle if any
 * device is idle (reached and up to date) or there is no other device; else offline.
 */
export function overallState(paused: boolean, devices: readonly SyncState[]): SyncState {
  if (paused) return 'paused'
  for (const s of ['error', 'syncing', 'idle'] as const) if (devices.includes(s)) return s
  return devices.length === 0 ? 'idle' : 'offline'
}
