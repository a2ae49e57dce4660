/** How every command shows a device: its name and the last SHORT_ID_LENGTH characters of its id. */

export const SHORT_ID_LENGTH = 8

/** `…` and the id's last characters ('-' for none). */
export function shortId(id: string): string {
  return id === '' ? '-' : '…' + id.slice(-SHORT_ID_LENGTH)
}

/** `name (…a1b2c3d4)`, or the short id alone when the name is not known. */
export function deviceLabel(id: string, names: Record<string, string | undefined>): string {
  const name = names[id]
  return name === undefined || name === '' ? shortId(id) : `${name} (${shortId(id)})`
}

/** A last-seen time as `devices` and `peers` both show it: `2026-12-07 14:03:32 (12s ago)`, or `-`. */
export function seenText(t: number | undefined, now = Date.now()): string {
  if (t === undefined || t === 0) return '-'
  return `${new Date(t).toISOString().replace('T', ' ').slice(0, 19)} (${Math.max(0, Math.round((now - t) / 1000))}s ago)`
}
