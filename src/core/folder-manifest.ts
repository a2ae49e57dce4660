import { conflictPath, type VersionSide } from './folder-conflicts.js'

/**
 * The rules of a shared folder's manifest (docs/design/folders.md §2.1, §2.4), independent of how
 * records are stored: one record per file, keyed by a fileId that a rename does not change. This
 * module turns what the watcher saw into record writes, and settles what merged records can
 * disagree on (two files claiming one path, an edit against a delete) the same way on every
 * device. Writes are plain values; the daemon hands them to the record layer (per-field HLC).
 */

export type EntryKind = 'text' | 'binary' | 'dir'

/** A manifest record's value. */
export interface ManifestEntry {
  path: string
  kind: EntryKind
  size: number
  /** SHA-256 of the content (hex); '' for a directory. */
  hash: string
  /** The executable bit. */
  x: boolean
  /** A delete: its stamp and the content version it saw. */
  deleted?: { t: string; hash: string }
  /** This record was merged into that one (same path, same content). */
  from?: string
}

/** An entry as read back from the record layer: with its key and who set its `path`, when. */
export interface StampedEntry extends ManifestEntry {
  fileId: string
  pathSide: VersionSide
}

/** Field writes of one record; `null` clears a field (`deleted: null` brings a file back). */
export type ManifestFields = { [K in keyof ManifestEntry]?: ManifestEntry[K] | null }

export type ManifestWrite = { op: 'create'; fileId: string; entry: ManifestEntry } | { op: 'update'; fileId: string; fields: ManifestFields }

/** What the folder watcher reports (folder/folder-watcher.ts `FolderChange` has this shape). */
export type LocalChange =
  | { kind: 'added' | 'modified'; path: string; state: FileFacts }
  | { kind: 'renamed'; path: string; from: string; state: FileFacts }
  | { kind: 'removed'; path: string }
  | { kind: 'excluded'; path: string }
  | { kind: 'dir-added' | 'dir-removed'; path: string }

export interface FileFacts {
  size: number
  hash: string | undefined
  executable: boolean
  binary: boolean | undefined
}

/** A new fileId: 16 random bytes, base64url (22 characters). */
export function newFileId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** The manifest as this device holds it, by path: live entries, and the latest delete at each path. */
export class ManifestView {
  private readonly live = new Map<string, StampedEntry>()
  private readonly gone = new Map<string, StampedEntry>()

  constructor(entries: Iterable<StampedEntry>) {
    for (const e of entries) {
      if (e.from !== undefined) continue
      const map = e.deleted === undefined ? this.live : this.gone
      const other = map.get(e.path)
      // Two live claims of one path are settled by resolvePathClaims; here the later one shows.
      if (other === undefined || e.pathSide.stamp > other.pathSide.stamp) map.set(e.path, e)
    }
  }

  at(path: string): StampedEntry | undefined {
    return this.live.get(path)
  }

  deletedAt(path: string): StampedEntry | undefined {
    return this.gone.get(path)
  }
}

function contentFields(state: FileFacts): Pick<ManifestEntry, 'kind' | 'size' | 'hash' | 'x'> {
  return { kind: state.binary === true ? 'binary' : 'text', size: state.size, hash: state.hash ?? '', x: state.executable }
}

/**
 * The record writes for a batch of local changes. `stamp` is this device's next HLC stamp (for
 * deletes); `newId` makes fileIds (newFileId, or a fixed sequence in tests). An excluded file
 * writes nothing: peers keep their copy.
 */
export function planLocalChanges(view: ManifestView, changes: readonly LocalChange[], stamp: () => string, newId: () => string = newFileId): ManifestWrite[] {
  const writes: ManifestWrite[] = []
  // What this batch did so far, over the view: a later change of the same path sees it.
  const made = new Map<string, StampedEntry | null>()
  const at = (path: string): StampedEntry | undefined => (made.has(path) ? (made.get(path) ?? undefined) : view.at(path))
  const create = (path: string, fields: Pick<ManifestEntry, 'kind' | 'size' | 'hash' | 'x'>): void => {
    // A file made again where one was deleted takes the old record back: its history goes on.
    const old = view.deletedAt(path)
    const fileId = old?.fileId ?? newId()
    if (old !== undefined) writes.push({ op: 'update', fileId, fields: { ...fields, deleted: null } })
    else writes.push({ op: 'create', fileId, entry: { path, ...fields } })
    made.set(path, { fileId, path, ...fields, pathSide: { device: '', stamp: '' } })
  }
  const update = (e: StampedEntry, fields: ManifestFields): void => {
    writes.push({ op: 'update', fileId: e.fileId, fields })
    const next = { ...e } as StampedEntry
    for (const [k, v] of Object.entries(fields)) {
      if (v === null) delete (next as unknown as Record<string, unknown>)[k]
      else (next as unknown as Record<string, unknown>)[k] = v
    }
    if (fields.path !== undefined && fields.path !== null) made.set(e.path, null)
    made.set(next.path, next.deleted === undefined ? next : null)
  }
  for (const c of changes) {
    switch (c.kind) {
      case 'added':
      case 'modified': {
        const e = at(c.path)
        if (e === undefined) create(c.path, contentFields(c.state))
        else if (!sameContent(e, contentFields(c.state))) update(e, contentFields(c.state))
        break
      }
      case 'renamed': {
        const e = at(c.from)
        if (e === undefined) {
          create(c.path, contentFields(c.state))
          break
        }
        const fields: ManifestFields = { path: c.path }
        if (!sameContent(e, contentFields(c.state))) Object.assign(fields, contentFields(c.state))
        update(e, fields)
        break
      }
      case 'removed':
      case 'dir-removed': {
        const e = at(c.path)
        if (e !== undefined) update(e, { deleted: { t: stamp(), hash: e.hash } })
        break
      }
      case 'dir-added':
        if (at(c.path) === undefined) create(c.path, { kind: 'dir', size: 0, hash: '', x: false })
        break
      case 'excluded':
        break
    }
  }
  return writes
}

function sameContent(a: Pick<ManifestEntry, 'kind' | 'size' | 'hash' | 'x'>, b: Pick<ManifestEntry, 'kind' | 'size' | 'hash' | 'x'>): boolean {
  return a.kind === b.kind && a.size === b.size && a.hash === b.hash && a.x === b.x
}

/**
 * Live records that claim the same path (two devices created it offline): with the same content
 * they are one file (the smallest fileId stays, the others point to it and go); otherwise the
 * latest `path` write keeps the path and the others move to `NAME.conflict-DEVICE-TIME.ext`.
 * Every device computes the same writes from the same records, so it does not matter how many
 * run it.
 */
export function resolvePathClaims(entries: Iterable<StampedEntry>, stamp: () => string): ManifestWrite[] {
  const byPath = new Map<string, StampedEntry[]>()
  for (const e of entries) {
    if (e.deleted !== undefined || e.from !== undefined) continue
    const group = byPath.get(e.path)
    if (group === undefined) byPath.set(e.path, [e])
    else group.push(e)
  }
  const writes: ManifestWrite[] = []
  for (const group of byPath.values()) {
    if (group.length < 2) continue
    const allSame = group.every((e) => sameContent(e, group[0] as StampedEntry))
    if (allSame) {
      const keeper = group.reduce((a, b) => (b.fileId < a.fileId ? b : a))
      for (const e of group)
        if (e !== keeper) writes.push({ op: 'update', fileId: e.fileId, fields: { from: keeper.fileId, deleted: { t: stamp(), hash: e.hash } } })
      continue
    }
    const winner = group.reduce((a, b) => (later(b.pathSide, a.pathSide) ? b : a))
    for (const e of group) if (e !== winner) writes.push({ op: 'update', fileId: e.fileId, fields: { path: conflictPath(e.path, e.pathSide) } })
  }
  return writes
}

function later(a: VersionSide, b: VersionSide): boolean {
  return a.stamp !== b.stamp ? a.stamp > b.stamp : a.device > b.device
}

/**
 * An edit against a delete: the edit wins. A device whose captured content differs from the
 * version the delete saw brings the file back (`deleted: null`, with its content).
 */
export function reviveAfterDelete(entry: StampedEntry, captured: FileFacts | undefined): ManifestWrite | undefined {
  if (entry.deleted === undefined || captured?.hash === undefined || captured.hash === entry.deleted.hash) return undefined
  return { op: 'update', fileId: entry.fileId, fields: { deleted: null, ...contentFields(captured) } }
}
