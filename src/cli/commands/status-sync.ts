import type { DeviceSyncStatus, SyncStatusView } from '../../core/sync-types.js'
import { shortId } from '../device-label.js'

const when = (t: number | undefined): string => (t === undefined ? 'never' : new Date(t).toISOString().replace('T', ' ').slice(0, 19))

function stateText(d: Pick<DeviceSyncStatus, 'state' | 'progress' | 'error'>): string {
  if (d.state === 'syncing' && d.progress !== undefined) return `syncing ${d.progress.collectionsDone}/${d.progress.collectionsTotal} collections`
  if (d.state === 'error' && d.error !== undefined) return `error ${d.error.code}: ${d.error.message}`
  return d.state
}

/** The `sync` lines of `kitsync status`: overall, then one line per device. */
export function formatSyncStatus(s: SyncStatusView): string[] {
  const paused =
    s.paused === undefined ? '' : s.paused.until === undefined ? ' (until kitsync sync resume)' : ` (until ${new Date(s.paused.until).toISOString()})`
  const lines = [`sync      ${s.state}${paused}, ${s.pending} pending${s.live ? '' : ' (peer not running: as last saved)'}`]
  for (const d of s.devices) {
    const took = d.lastExchangeMs === undefined ? '' : `, last exchange took ${d.lastExchangeMs} ms`
    lines.push(`          ${d.name} (${shortId(d.deviceId)}): ${stateText(d)}, ${d.pending} pending, last sync ${when(d.lastSyncAt)}${took}`)
  }
  return lines
}
