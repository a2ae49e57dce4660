import { parseAllDocuments } from 'yaml'
import { parseHlc } from './hlc.js'

/**
 * The rules for a merge that cannot stand (issue 22): a JSON or YAML file that was valid on both
 * sides and is not after the character merge keeps the version with the latest hybrid-logical-
 * clock stamp, and the other is saved beside it as `NAME.conflict-DEVICE-TIME.ext`; a binary
 * file keeps the newest version, with the same kind of backup. Pure: the folder layer writes.
 */

export type StructuredKind = 'json' | 'yaml'

/** The structured kind of a file by its extension, if it has one this rule knows. */
export function structuredKind(path: string): StructuredKind | undefined {
  const lower = path.toLowerCase()
  if (lower.endsWith('.json')) return 'json'
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml'
  return undefined
}

export function isValidStructured(kind: StructuredKind, text: string): boolean {
  if (kind === 'json') {
    try {
      JSON.parse(text)
      return true
    } catch {
      // invalid JSON is the answer, not a failure
      return false
    }
  }
  try {
    return parseAllDocuments(text, { uniqueKeys: true }).every((d) => d.errors.length === 0)
  } catch {
    // parseAllDocuments reports through errors; a throw still means invalid
    return false
  }
}

/** One side of a conflict: who made the version and when (an HLC stamp). */
export interface VersionSide {
  device: string
  stamp: string
}

/** Whether `a` is the later version: greater stamp (HLC stamps sort like the clock), then device id. */
export function isLater(a: VersionSide, b: VersionSide): boolean {
  if (a.stamp !== b.stamp) return a.stamp > b.stamp
  return a.device > b.device
}

/** `dir/NAME.conflict-DEVICE-TIME.ext` for the losing version of `path` (TIME in UTC, to the second). */
export function conflictPath(path: string, loser: VersionSide): string {
  const slash = path.lastIndexOf('/')
  const dir = path.slice(0, slash + 1)
  const base = path.slice(slash + 1)
  // The extension is what follows the last dot, except for a leading dot (`.bashrc` has none).
  const dot = base.lastIndexOf('.')
  const [name, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, '']
  const device = loser.device.replace(/[^A-Za-z0-9]/g, '').slice(-8) || 'device'
  const ms = parseHlc(loser.stamp)?.ms ?? 0
  const time = new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
  return `${dir}${name}.conflict-${device}-${time}${ext}`
}

export type StructuredMerge = { kind: 'merged' } | { kind: 'conflict'; winner: 'local' | 'remote'; keep: string; backup: { text: string; path: string } }

/**
 * Decide a merge of a JSON/YAML file. `local` is this device's text before the merge, `remote`
 * the other side's last captured text, `merged` what the character merge made. Only when both
 * sides were valid and the merge is not does the rule apply.
 */
export function decideStructuredMerge(
  path: string,
  merged: string,
  local: { text: string } & VersionSide,
  remote: { text: string } & VersionSide,
): StructuredMerge {
  const kind = structuredKind(path)
  if (kind === undefined || isValidStructured(kind, merged)) return { kind: 'merged' }
  if (!isValidStructured(kind, local.text) || !isValidStructured(kind, remote.text)) return { kind: 'merged' }
  return isLater(local, remote)
    ? { kind: 'conflict', winner: 'local', keep: local.text, backup: { text: remote.text, path: conflictPath(path, remote) } }
    : { kind: 'conflict', winner: 'remote', keep: remote.text, backup: { text: local.text, path: conflictPath(path, local) } }
}

/** A binary file changed on both sides: the newest version stays, the other becomes the backup. */
export function decideNewestWins(path: string, local: VersionSide, remote: VersionSide): { winner: 'local' | 'remote'; backupPath: string } {
  return isLater(local, remote) ? { winner: 'local', backupPath: conflictPath(path, remote) } : { winner: 'remote', backupPath: conflictPath(path, local) }
}
