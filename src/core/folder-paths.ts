import { KitsyncError } from './errors.js'

/**
 * Paths of a shared folder as they cross the wire: relative, '/'-separated, NFC. A path comes
 * from a peer, and a member can be hostile: every check that needs no disk is here (pure); the
 * ones that do (symlinks, case on a case-insensitive file system) are in folder/safe-path.ts.
 */

/** Why a path is refused; `details.reason` of the INVALID_NAME error. */
export type PathRefusal =
  | 'NOT_A_STRING'
  | 'EMPTY'
  | 'TOO_LONG'
  | 'NUL'
  | 'CONTROL'
  | 'BACKSLASH'
  | 'ABSOLUTE'
  | 'DRIVE'
  | 'DOT_SEGMENT'
  | 'EMPTY_SEGMENT'
  | 'NOT_NFC'
  | 'RESERVED'
  | 'SYMLINK'
  | 'NOT_A_DIRECTORY'
  | 'CASE_CONFLICT'

export type PathCheck = { ok: true; path: string; parts: string[] } | { ok: false; reason: PathRefusal }

/** Linux's PATH_MAX and NAME_MAX, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096
export const MAX_NAME_BYTES = 255

/** The folder's own state (trash, temp files); a peer can never write here. */
export const FOLDER_STATE_DIR = '.kitsync'
/** Never synced, and a peer's path through one is refused: `.git/hooks/x` would run code. */
const RESERVED_NAMES = new Set([FOLDER_STATE_DIR, '.git'])

const encoder = new TextEncoder()

/** Check a relative folder path received from a peer (or about to be sent to one). */
export function checkFolderPath(path: unknown): PathCheck {
  if (typeof path !== 'string') return { ok: false, reason: 'NOT_A_STRING' }
  if (path.length === 0) return { ok: false, reason: 'EMPTY' }
  if (path.includes('\0')) return { ok: false, reason: 'NUL' }
  // eslint-disable-next-line no-control-regex
  if (/[\u0001-\u001f\u007f]/.test(path)) return { ok: false, reason: 'CONTROL' }
  // A backslash is a separator on Windows and a letter on Linux: refused both ways, so a
  // name like `..\..\x` cannot mean one thing here and another on a peer.
  if (path.includes('\\')) return { ok: false, reason: 'BACKSLASH' }
  if (path.startsWith('/')) return { ok: false, reason: 'ABSOLUTE' }
  if (/^[A-Za-z]:/.test(path)) return { ok: false, reason: 'DRIVE' }
  if (path.length * 3 > MAX_PATH_BYTES && encoder.encode(path).byteLength > MAX_PATH_BYTES) return { ok: false, reason: 'TOO_LONG' }
  if (path.normalize('NFC') !== path) return { ok: false, reason: 'NOT_NFC' }
  const parts = path.split('/')
  for (const part of parts) {
    if (part.length === 0) return { ok: false, reason: 'EMPTY_SEGMENT' }
    if (part === '.' || part === '..') return { ok: false, reason: 'DOT_SEGMENT' }
    if (part.length * 3 > MAX_NAME_BYTES && encoder.encode(part).byteLength > MAX_NAME_BYTES) return { ok: false, reason: 'TOO_LONG' }
  }
  if (RESERVED_NAMES.has((parts[0] as string).toLowerCase()) || parts.some((p) => p.toLowerCase() === '.git')) return { ok: false, reason: 'RESERVED' }
  return { ok: true, path, parts }
}

/** checkFolderPath, throwing INVALID_NAME with the reason in `details.reason`. */
export function assertFolderPath(path: unknown): string[] {
  const check = checkFolderPath(path)
  if (!check.ok) throw unsafePath(path, check.reason)
  return check.parts
}

export function unsafePath(path: unknown, reason: PathRefusal): KitsyncError {
  const shown = typeof path === 'string' ? JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}...` : path) : typeof path
  return new KitsyncError('INVALID_NAME', `refused folder path ${shown}: ${REASONS[reason]}`, { details: { reason } })
}

const REASONS: Record<PathRefusal, string> = {
  NOT_A_STRING: 'not a string',
  EMPTY: 'empty',
  TOO_LONG: `longer than ${MAX_PATH_BYTES} bytes, or a name longer than ${MAX_NAME_BYTES}`,
  NUL: 'holds a NUL character',
  CONTROL: 'holds a control character',
  BACKSLASH: 'holds a backslash',
  ABSOLUTE: 'absolute',
  DRIVE: 'starts with a drive letter',
  DOT_SEGMENT: "has a '.' or '..' segment",
  EMPTY_SEGMENT: "has an empty segment ('//' or a trailing '/')",
  NOT_NFC: 'not in Unicode NFC',
  RESERVED: 'goes into .kitsync/ or .git/, which never sync',
  SYMLINK: 'goes through a symbolic link',
  NOT_A_DIRECTORY: 'goes through a file',
  CASE_CONFLICT: 'differs only by case from another file, on a case-insensitive file system',
}

/** The key two paths share when a case-insensitive file system would take them for one file. */
export function caseKey(path: string): string {
  return path.normalize('NFC').toLowerCase()
}

/** Groups of paths that are distinct here and one file on a case-insensitive file system. */
export function caseConflicts(paths: Iterable<string>): string[][] {
  const byKey = new Map<string, string[]>()
  for (const p of paths) {
    const k = caseKey(p)
    const group = byKey.get(k)
    if (group === undefined) byKey.set(k, [p])
    else group.push(p)
  }
  return [...byKey.values()].filter((g) => g.length > 1).map((g) => g.sort())
}
