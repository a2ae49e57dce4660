import type { CompactionPolicy } from '../core/compaction-policy.js'
import { KitsyncError } from '../core/errors.js'
import type { SelectionSettings } from '../core/selection.js'
import { KITSYNC_VERSION } from '../core/version.js'
import type { WorkspaceInfo } from '../core/workspace-types.js'
import { DocStore } from '../store/doc-store.js'
import { ensureHome, homePaths, type HomePaths, type WorkspaceConfig } from '../store/home.js'
import type { WorkspaceKeys } from '../store/key-file.js'
import { openHomeStore, type BinaryLevel } from '../store/level.js'
import { SnapshotFiles } from '../store/snapshot-files.js'
import { WriteAheadFile, type WalEntry } from '../store/wal.js'
import type { DerivedRows } from './derived-rows.js'
import { readHomeEarly, type EarlyHome } from './home-early.js'
import { recordIndexRows } from './record-index-rows.js'

export interface LocalWorkspaceOptions {
  home: string
  /** Workspace name used when the home folder has no workspace yet. */
  name?: string
  maxRecordBytes?: number
  compaction?: Partial<CompactionPolicy>
  /** Wall clock of the hybrid logical clock (tests: versions written in the past). */
  now?: () => number
  /** Idle time after which an app collection's document is dropped from memory (daemon/idle-docs.ts; default 2 s, 0: never). */
  unloadIdleMs?: number
  /** The home's store, already being opened in its existing home folder (see openWorkspace); taken over, closed on failure. */
  store?: Promise<BinaryLevel>
  /** The home's small files, already being read beside the store (see openWorkspace and EarlyHome). */
  early?: EarlyHome
}

/** Options of a workspace over a bare database (memory-level in unit tests). */
export interface DatabaseOptions {
  maxRecordBytes?: number | undefined
  compaction?: Partial<CompactionPolicy> | undefined
  socket?: string
  wal?: WriteAheadFile
  recover?: WalEntry[]
  /** Where large snapshots are kept as files (without: in LevelDB). */
  snapshotFiles?: SnapshotFiles
  /** Wall clock of the hybrid logical clock (tests). */
  now?: () => number
  /** See LocalWorkspaceOptions.unloadIdleMs. */
  unloadIdleMs?: number | undefined
}

/** Everything a LocalWorkspace is built from, read and checked before it is constructed. */
export interface LocalWorkspaceParts {
  store: DocStore
  info: WorkspaceInfo
  /** The stored collections. */
  known: string[]
  /** The home folder (none for bare databases in tests). */
  paths: HomePaths | undefined
  /** The workspace keys of this device (with a home folder). */
  keys: WorkspaceKeys | undefined
  /** Selective sync settings from workspace.json. */
  selection: SelectionSettings | undefined
  maxRecordBytes: number | undefined
  socket: string
  now: (() => number) | undefined
  /** What is derived from each app collection's records in the batch of its updates (see derived-rows.ts). */
  derivers: DerivedRows[]
  unloadIdleMs: number | undefined
}

/**
 * The parts of the workspace of a home folder (initialised on first use). On failure the
 * store is closed again; once this returns, the caller closes it (LocalWorkspace.close).
 */
export async function homeParts(options: LocalWorkspaceOptions): Promise<LocalWorkspaceParts> {
  const paths = homePaths(options.home)
  if (options.store === undefined) await ensureHome(paths.home)
  // Side by side: LevelDB opens on its own thread (with an fsync of its MANIFEST) while the
  // small files are read. The store is closed again if anything else failed.
  const early = options.early ?? readHomeEarly(paths, options.name)
  const [init, id, keys, opened] = await Promise.allSettled([early.init, early.deviceId, early.keys, options.store ?? openHomeStore(paths)])
  // The first failure in the order of old: a store held by another process (STORE_LOCKED, waited for) before a damaged keys.json.
  const failed = [init, id, opened, keys].find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) {
    if (opened.status === 'fulfilled') await opened.value.close()
    throw failed.reason
  }
  if (opened.status === 'rejected') throw opened.reason // (found above; for the type)
  const { config } = (init as PromiseFulfilledResult<{ config: WorkspaceConfig }>).value
  const deviceId = (id as PromiseFulfilledResult<string>).value
  const db = opened.value
  let wal: WriteAheadFile
  let entries: WalEntry[]
  try {
    ;({ wal, entries } = WriteAheadFile.open(paths.wal))
  } catch (err) {
    await db.close()
    throw err
  }
  const info: WorkspaceInfo = { home: paths.home, deviceId, workspaceId: config.id, name: config.name, version: KITSYNC_VERSION }
  try {
    const parts = await databaseParts(db, info, {
      maxRecordBytes: options.maxRecordBytes ?? config.maxRecordBytes,
      compaction: options.compaction,
      socket: paths.socket,
      wal,
      recover: entries,
      snapshotFiles: new SnapshotFiles(paths.snapshots),
      ...(options.now === undefined ? {} : { now: options.now }),
      unloadIdleMs: options.unloadIdleMs,
    })
    return { ...parts, paths, keys: (keys as PromiseFulfilledResult<WorkspaceKeys>).value, selection: selectionSettings(config, paths.workspace) }
  } catch (err) {
    wal.close()
    await db.close()
    throw err
  }
}

/** The parts of a workspace over any abstract-level database: the store, with the write-ahead file's records recovered into it. */
export async function databaseParts(db: BinaryLevel, info: WorkspaceInfo, options: DatabaseOptions = {}): Promise<LocalWorkspaceParts> {
  const store = new DocStore(db, {
    ...(options.compaction === undefined ? {} : { policy: options.compaction }),
    ...(options.wal === undefined ? {} : { wal: options.wal }),
    ...(options.snapshotFiles === undefined ? {} : { snapshotFiles: options.snapshotFiles }),
  })
  if (options.recover !== undefined && options.recover.length > 0) await store.recover(options.recover)
  // Read once: the sweep needs them too.
  const known = await store.collectionNames()
  await store.sweepSnapshotFiles(known)
  return {
    store,
    info,
    known,
    paths: undefined,
    keys: undefined,
    selection: undefined,
    maxRecordBytes: options.maxRecordBytes,
    socket: options.socket ?? '',
    now: options.now,
    derivers: [recordIndexRows],
    unloadIdleMs: options.unloadIdleMs,
  }
}

/** The selective sync settings of workspace.json, checked (a hand-edited file may be wrong). */
function selectionSettings(config: { items?: unknown; localOnly?: unknown }, file: string): { items?: string[]; localOnly?: string[] } {
  const list = (value: unknown, name: string): string[] | undefined => {
    if (value === undefined || value === null) return undefined
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new KitsyncError('INVALID_ARGUMENT', `${file}: ${name} must be a list of collection names or patterns`)
    }
    return value as string[]
  }
  const items = list(config.items, 'items')
  const localOnly = list(config.localOnly, 'localOnly')
  return { ...(items === undefined ? {} : { items }), ...(localOnly === undefined ? {} : { localOnly }) }
}
