import { KitsyncError } from '../core/errors.js'
import { fileVersions, pickVersion, type FileHistory, type FileRestoreResult, type FileVersion } from '../core/folder-versions.js'
import { fileText } from '../core/folder-text-doc.js'
import { parseTime } from '../core/history-types.js'
import type { StampedEntry } from '../core/folder-manifest.js'
import { writeFileAtomic } from '../folder/atomic-write.js'
import { readDiskEntry, sameContent, sha256 } from '../folder/file-state.js'
import type { FolderEngine } from './folder-engine.js'
import { entryOf, folderCollection, type FolderHost } from './folder-host.js'

/**
 * The history of a shared folder's files (docs/design/folders.md §2.7): the versions of a file
 * are the history entries of its manifest record (derived like any collection's, in the batch of
 * each manifest write, pruned by the collection's retention, synced by the history exchange),
 * and each version's content is the blob stored under its hash: a binary's own blob, and for a
 * text file the text as it was captured or written (folder-version-text.ts). `restore` writes the old content
 * to the file and captures it through the engine's local-change path, so it syncs and merges
 * like a save.
 */

const encoder = new TextEncoder()

/** The record of the file at `path`: the live one, else the one deleted last. */
function fileAt(entries: Iterable<StampedEntry>, path: string): StampedEntry | undefined {
  let deleted: StampedEntry | undefined
  for (const e of entries) {
    if (e.path !== path || e.from !== undefined) continue
    if (e.deleted === undefined) return e
    if (deleted === undefined || (deleted.deleted?.t ?? '') < (e.deleted.t ?? '')) deleted = e
  }
  return deleted
}

/** A file's versions, newest first. */
export async function fileHistory(host: FolderHost, folder: string, path: string, engine: FolderEngine | undefined): Promise<FileHistory> {
  if (host.history === undefined) throw new KitsyncError('INVALID_ARGUMENT', 'file history is not kept by this workspace')
  const collection = folderCollection(folder)
  let entries: Iterable<StampedEntry>
  if (engine !== undefined) entries = engine.entries.values()
  else {
    const records = await host.records(collection)
    entries = Object.entries(records).flatMap(([k, v]) => entryOf(k, v) ?? [])
  }
  const e = fileAt(entries, path)
  if (e === undefined) throw new KitsyncError('NOT_FOUND', `no file ${JSON.stringify(path)} in folder ${folder}`, { details: { collection } })
  const [rows, names] = await Promise.all([host.history.rows(collection, e.fileId), host.history.deviceNames()])
  return { folder, path, fileId: e.fileId, versions: fileVersions(rows, names) }
}

/** The content of a version: the blob under its hash (here, else from a connected peer), or the document's text when that is the version. */
async function contentOf(engine: FolderEngine, fileId: string, v: FileVersion, what: string): Promise<Uint8Array> {
  const blob = await engine.host.units.getBlob(v.hash)
  if (blob !== undefined) return blob
  if (v.kind === 'text') {
    const text = encoder.encode(fileText(await engine.doc(fileId)))
    if (sha256(text) === v.hash) return text
  }
  throw new KitsyncError('NOT_FOUND', `the content of version ${v.id} of ${what} is not stored on this device and no connected peer has it`)
}

/**
 * Write an old version of a file again, as a local change that syncs. Runs in the folder's queue
 * (after the local changes seen before it); refused with FILE_CHANGED, writing nothing, when the
 * file on disk is not what this device captured (an edit not captured yet, or a file made where
 * a deleted one was), as a peer's write is (the changed-under-us rule).
 */
export async function restoreFile(
  engine: FolderEngine,
  path: string,
  target: { version?: string; at?: number | string },
  now: number = Date.now(),
): Promise<FileRestoreResult> {
  let out: FileRestoreResult | undefined
  let failure: unknown
  await engine.enqueue('restore', async () => {
    try {
      out = await restoreNow(engine, path, target, now)
    } catch (err) {
      failure = err
    }
  })
  if (failure !== undefined) throw failure
  // The folder stopped (removed here, or the peer stopping) before the job ran.
  if (out === undefined) throw new KitsyncError('ABORTED', `folder ${engine.name} stopped before the restore ran; nothing was written`)
  return out
}

async function restoreNow(engine: FolderEngine, path: string, target: { version?: string; at?: number | string }, now: number): Promise<FileRestoreResult> {
  const what = `${JSON.stringify(path)} in folder ${engine.name}`
  const history = await fileHistory(engine.host, engine.name, path, engine)
  const at = target.at === undefined ? undefined : parseTime(target.at, now, 'at')
  const v = pickVersion(history.versions, { ...(target.version === undefined ? {} : { version: target.version }), ...(at === undefined ? {} : { at }) }, what)
  const abs = await engine.abs(path)
  if (abs === undefined) throw new KitsyncError('INVALID_NAME', `${what} cannot be written here (see the peer's log)`)
  const captured = engine.ledger.captured(path)
  const refuse = (why: string): never => {
    throw new KitsyncError('FILE_CHANGED', `${what} ${why}; nothing was written (save or undo it, let it sync, then restore)`, {
      details: { collection: folderCollection(engine.name) },
    })
  }
  const disk = await readDiskEntry(abs, Number.MAX_SAFE_INTEGER)
  if (captured === undefined ? disk.kind !== 'missing' : !sameContent(captured, disk))
    refuse(captured === undefined ? 'exists on disk but was not captured yet' : 'has a local edit that was not captured yet')
  const revived = captured === undefined
  if (!revived && captured.hash === v.hash) return { folder: engine.name, path, restored: v, revived }
  const bytes = await contentOf(engine, history.fileId, v, what)
  const base = engine.ledger.base(path)
  const result = await engine.ledger.hold(path, async () => {
    const w = await writeFileAtomic(abs, bytes, {
      expected: captured ?? 'absent',
      executable: captured?.executable ?? false,
      trash: { trash: engine.trash, path },
    })
    return { state: w.status === 'written' ? w.state : captured, ...(base === undefined ? {} : { base }), w }
  })
  if (result.w.status !== 'written') return refuse('changed while it was being restored')
  // The engine's local-change path: the manifest write (a deleted record taken back), the capture into the document, one commit.
  await engine.local([{ kind: revived ? 'added' : 'modified', path, state: result.w.state }])
  return { folder: engine.name, path, restored: v, revived }
}
