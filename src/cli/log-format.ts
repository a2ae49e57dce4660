/**
 * `peer logs` for a person: each JSON line of the peer's log as
 * `2026-12-07 13:40:28.123  INFO   sync:connected  device=laptop peerId=12D3KooW...`, the
 * time first (in UTC, as the log holds it). Lines that are not the logger's (a start-up error,
 * a crash trace on stderr) are printed as they are. `peer logs --json` prints the raw lines.
 */

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
/** Fields every line has, or that the line shows in its own columns. */
const SHOWN_APART = new Set(['level', 'time', 'pid', 'hostname', 'event', 'msg'])

function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value
  return JSON.stringify(value)
}

/** One line of the log (without its newline), formatted; the same line when it is not a log entry. */
export function formatLogLine(line: string): string {
  if (!line.startsWith('{')) return line
  let entry: Record<string, unknown>
  try {
    entry = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line // cut short (the peer is writing it, or was killed while it did)
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return line
  const time =
    typeof entry.time === 'string'
      ? entry.time.replace('T', ' ').replace(/Z$/, '')
      : typeof entry.time === 'number'
        ? new Date(entry.time).toISOString().replace('T', ' ').replace(/Z$/, '')
        : '-'
  const level = typeof entry.level === 'number' ? (LEVEL_NAMES[entry.level] ?? String(entry.level)) : String(entry.level ?? '-')
  const event = typeof entry.event === 'string' ? entry.event : typeof entry.msg === 'string' ? entry.msg : '-'
  const message = typeof entry.msg === 'string' && entry.msg !== event ? ` ${entry.msg}` : ''
  const fields = Object.entries(entry)
    .filter(([k]) => !SHOWN_APART.has(k))
    .map(([k, v]) => `${k}=${fieldValue(v)}`)
  return `${time}  ${level.padEnd(5)}  ${event}${message}${fields.length === 0 ? '' : '  ' + fields.join(' ')}`
}

/**
 * Format a chunk of the log. `carry` is an incomplete last line from the chunk before (a line
 * the peer is still writing); the result's `carry` is this chunk's, printed with the next one.
 */
export function formatLogChunk(text: string, carry = ''): { text: string; carry: string } {
  const lines = (carry + text).split('\n')
  const rest = lines.pop() ?? ''
  return { text: lines.map((l) => formatLogLine(l) + '\n').join(''), carry: rest }
}
