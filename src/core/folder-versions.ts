import { KitsyncError } from './errors.js'
import type { JsonValue } from './json.js'

/**
 * A shared file's versions, read from the history entries of its manifest record (one record
 * per fileId in `_folder.NAME`, docs/design/folders.md §2.1): each entry holds the record as
 * its writer left it (path, kind, size, hash, deleted), so a version's content is the blob or
 * text stored under its hash (daemon/folder-history.ts). Pure: the rows come from the store.
 */

/** What happened to the file in a version. */
export type FileVersionOp = 'added' | 'modified' | 'renamed' | 'removed'

/** One version of a shared file, as `folder history` lists it (newest first). */
export interface FileVersion {
  /** The version's id: the stamp of its manifest write (pass it to `folder restore --version`). */
  id: string
  /** Milliseconds since the epoch, from the stamp (the writer's clock). */
  time: number
  /** The writer's device name (its short id when this device does not know the name). */
  device: string
  /** The writer's device tag (the stamp's node part). */
  deviceTag: string
  op: FileVersionOp
  /** The file's path in the folder at this version. */
  path: string
  /** The path before, for a rename. */
  from?: string
  kind: 'text' | 'binary' | 'dir'
  size: number
  /** SHA-256 of the content (hex); '' for a directory. */
  hash: string
}

/** A file's history: its fileId and versions, newest first. */
export interface FileHistory {
  folder: string
  path: string
  fileId: string
  versions: FileVersion[]
}

/** What `folder restore` did. */
export interface FileRestoreResult {
  folder: string
  path: string
  /** The version written again. */
  restored: FileVersion
  /** Whether the file was gone (deleted) before the restore. */
  revived: boolean
}

/** One history entry of a manifest record, as the store gives it (store/history-rows.ts VersionRow). */
export interface ManifestVersionRow {
  stamp: string
  time: number
  device: string
  v?: JsonValue
  d?: 1
  /** 1: a whole write (a record created). */
  w?: 1
  /** Fields the write changed. */
  fields?: string[]
}

interface Shape {
  path: string
  kind: 'text' | 'binary' | 'dir'
  size: number
  hash: string
  x: boolean
  deleted: boolean
}

function shapeOf(row: ManifestVersionRow): Shape | undefined {
  if (row.d === 1) return undefined
  const v = row.v
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined
  const r = v as Record<string, JsonValue>
  if (typeof r.path !== 'string' || (r.kind !== 'text' && r.kind !== 'binary' && r.kind !== 'dir')) return undefined
  return {
    path: r.path,
    kind: r.kind,
    size: typeof r.size === 'number' ? r.size : 0,
    hash: typeof r.hash === 'string' ? r.hash : '',
    x: r.x === true,
    deleted: typeof r.deleted === 'object' && r.deleted !== null,
  }
}

/**
 * The versions of one file from its record's entries (newest first): a write that changed none
 * of path, content, executable bit or deleted state (a `pathAt` or `prev` bookkeeping field, the
 * same capture seen twice) is not a version of the file and is left out.
 */
export function fileVersions(rows: readonly ManifestVersionRow[], names: ReadonlyMap<string, string> = new Map()): FileVersion[] {
  const oldestFirst = [...rows].reverse()
  const out: FileVersion[] = []
  let prev: Shape | undefined
  for (const row of oldestFirst) {
    const s = shapeOf(row)
    if (s === undefined) continue
    let op: FileVersionOp
    // The oldest entry kept: a field write is a change of a file whose earlier versions were pruned.
    if (prev === undefined && row.w !== 1 && row.fields !== undefined) op = s.deleted ? 'removed' : row.fields.includes('path') ? 'renamed' : 'modified'
    else if (prev === undefined || (prev.deleted && !s.deleted)) op = 'added'
    else if (s.deleted) op = 'removed'
    else if (s.path !== prev.path) op = 'renamed'
    else op = 'modified'
    const same = prev !== undefined && prev.path === s.path && prev.hash === s.hash && prev.x === s.x && prev.deleted === s.deleted && prev.kind === s.kind
    const wasDeleted = prev?.deleted === true
    const from = prev?.path
    prev = s
    if (same || (s.deleted && wasDeleted)) continue
    out.push({
      id: row.stamp,
      time: row.time,
      device: row.device === '' ? 'unknown' : (names.get(row.device) ?? row.device),
      deviceTag: row.device,
      op,
      path: s.path,
      ...(op === 'renamed' && from !== undefined ? { from } : {}),
      kind: s.kind,
      size: s.size,
      hash: s.hash,
    })
  }
  return out.reverse()
}

/** The version `restore` writes again: by id, or the one current at a time (the newest at or before it). NOT_FOUND otherwise. */
export function pickVersion(versions: readonly FileVersion[], target: { version?: string; at?: number }, what: string): FileVersion {
  if ((target.version === undefined) === (target.at === undefined)) throw new KitsyncError('INVALID_ARGUMENT', 'restore needs either a version or a time (at)')
  const found = target.version !== undefined ? versions.find((v) => v.id === target.version) : versions.find((v) => v.time <= (target.at as number))
  if (found === undefined) {
    const which = target.version !== undefined ? `version ${target.version}` : `version at or before ${new Date(target.at as number).toISOString()}`
    throw new KitsyncError('NOT_FOUND', `no ${which} of ${what} (kitsync folder history lists them)`)
  }
  // A removal has no content to write (the file did not exist then): the versions before it have.
  if (found.op === 'removed')
    throw new KitsyncError('INVALID_ARGUMENT', `version ${found.id} of ${what} is its removal; restore a version before it (kitsync folder history)`)
  if (found.kind === 'dir') throw new KitsyncError('INVALID_ARGUMENT', `${what} is a directory: it has no content to restore`)
  return found
}
