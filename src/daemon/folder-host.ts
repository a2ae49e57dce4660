import type { ManifestEntry, ManifestWrite, StampedEntry } from '../core/folder-manifest.js'
import type { ManifestVersionRow } from '../core/folder-versions.js'
import type { HistoryRetention, HistorySetting } from '../core/history-types.js'
import type { JsonValue } from '../core/json.js'
import { DEFAULT_MAX_FILE_SIZE } from '../core/folder-selection.js'
import { FOLDER_COLLECTION_PREFIX } from '../core/membership.js'
import type { UnitRecordWrite, Units } from '../core/unit-types.js'
import type { FolderChangeEvent, FolderConflictEvent } from '../core/folder-types.js'
import type { ConflictEvent } from '../core/workspace-types.js'

/**
 * What the folder engine needs of the workspace (docs/design/folders.md §3): the units of a
 * folder's collection, its records, the device's clock and a place to tell what happened. The
 * running peer gives it over LocalWorkspace (folder-wiring.ts); unit tests give it over an
 * in-memory network (test/helpers/fake-folder-net.ts).
 */
export interface FolderHost {
  readonly deviceId: string
  readonly units: Units
  /** This device's next HLC stamp. */
  stamp(): string
  /** Move the clock past a stamp received. */
  observe(stamp: string): void
  /** Every record of a collection (an internal `_folder.NAME` one included); {} when it does not exist. */
  records(collection: string): Promise<Record<string, JsonValue>>
  /** Names of every collection (internal ones included): the folders are the `_folder.*` ones. */
  collectionNames(): string[]
  /** Record changes of one collection, local and merged from peers; resolves once listening. */
  watchRecords(collection: string, listener: (e: RecordChangeEvent) => void): Promise<() => void>
  emit<K extends keyof FolderEvents>(event: K, payload: FolderEvents[K]): void
  /** The history entries of the manifest (daemon/folder-history.ts); absent: no file history (the in-memory test network). */
  readonly history?: {
    /** One record's entries, newest first, once every write so far is stored. */
    rows(collection: string, key: string): Promise<ManifestVersionRow[]>
    /** Device tag -> device name. */
    deviceNames(): Promise<Map<string, string>>
    /** Set a collection's retention in `_collections` (null: the default), synced; returns the retention now. */
    setRetention(collection: string, setting: HistorySetting | null): Promise<HistoryRetention>
  }
}

/** A record of a folder's collection changed: written here (local) or merged from a peer (remote); value undefined: deleted. */
export interface RecordChangeEvent {
  key: string
  value: JsonValue | undefined
  source: 'local' | 'remote'
}

export interface FolderEvents {
  'folder:change': FolderChangeEvent
  'folder:conflict': FolderConflictEvent
  'sync:conflict': ConflictEvent
}

/** The internal collection of a shared folder's manifest. */
export function folderCollection(name: string): string {
  return FOLDER_COLLECTION_PREFIX + name
}

export { FOLDER_COLLECTION_PREFIX }

/** The manifest record holding the folder's shared definition (a fileId is 22 base64url characters, so it never collides). */
export const DEFINITION_KEY = '.folder'

/** The shared definition of a folder, synced in its manifest collection. */
export interface FolderDefinition {
  include: string[]
  exclude: string[]
  maxFileSize: number
  createdBy: string
  createdAt: number
}

/** A definition record read back (defaults for what it lacks); undefined when the value is not one. */
export function definitionOf(value: JsonValue | undefined): FolderDefinition | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const v = value as Record<string, JsonValue>
  const strings = (x: JsonValue | undefined): string[] => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : [])
  return {
    include: strings(v.include),
    exclude: strings(v.exclude),
    maxFileSize: typeof v.maxFileSize === 'number' && v.maxFileSize > 0 ? v.maxFileSize : DEFAULT_MAX_FILE_SIZE,
    createdBy: typeof v.createdBy === 'string' ? v.createdBy : '',
    createdAt: typeof v.createdAt === 'number' ? v.createdAt : 0,
  }
}

/** A record value read back as a manifest entry; undefined when it is not one. */
export function entryOf(fileId: string, value: JsonValue | undefined): StampedEntry | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const v = value as Record<string, JsonValue>
  if (typeof v.path !== 'string' || (v.kind !== 'text' && v.kind !== 'binary' && v.kind !== 'dir')) return undefined
  const [stamp = '', device = ''] = typeof v.pathAt === 'string' ? v.pathAt.split(' ') : []
  const entry: StampedEntry = {
    fileId,
    path: v.path,
    kind: v.kind,
    size: typeof v.size === 'number' ? v.size : 0,
    hash: typeof v.hash === 'string' ? v.hash : '',
    x: v.x === true,
    pathSide: { device, stamp },
  }
  const d = v.deleted
  if (typeof d === 'object' && d !== null && !Array.isArray(d) && typeof d.t === 'string')
    entry.deleted = { t: d.t, hash: typeof d.hash === 'string' ? d.hash : '' }
  if (typeof v.from === 'string') entry.from = v.from
  return entry
}

/**
 * A planned manifest write as record fields. Every write of `path` carries `pathAt` ("STAMP
 * DEVICE") in the same write, so the record says who set its path and when under the per-field
 * rule (what resolvePathClaims orders two claims of one path by).
 */
export function recordWriteOf(w: ManifestWrite, pathAt: () => string): UnitRecordWrite {
  const fields: Record<string, JsonValue> = {}
  const source = w.op === 'create' ? (w.entry as Partial<ManifestEntry>) : w.fields
  for (const [k, v] of Object.entries(source)) if (v !== undefined) fields[k] = v as JsonValue
  if (typeof fields.path === 'string') fields.pathAt = pathAt()
  return { key: w.fileId, fields }
}

/** A manifest entry after a write (what this device holds once its own write is stored). */
export function applyWrite(before: StampedEntry | undefined, w: ManifestWrite, fields: Record<string, JsonValue>): StampedEntry | undefined {
  const merged: Record<string, JsonValue> = {}
  if (before !== undefined) {
    const { fileId: _id, pathSide, ...rest } = before
    Object.assign(merged, rest, { pathAt: `${pathSide.stamp} ${pathSide.device}` })
  }
  for (const [k, v] of Object.entries(fields)) {
    if (v === null) delete merged[k]
    else merged[k] = v
  }
  return entryOf(w.fileId, merged)
}
