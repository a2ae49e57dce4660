import { readFile } from 'node:fs/promises'
import type * as Y from 'yjs'
import { decideNewestWins, structuredKind, type VersionSide } from '../core/folder-conflicts.js'
import { KitsyncError } from '../core/errors.js'
import { unsafePath } from '../core/folder-paths.js'
import { captureText, currentBase, fileText, mergeRemoteUpdate, settleMerge, textAt, type RemoteMerge } from '../core/folder-text-doc.js'
import { decodeText } from '../core/folder-text.js'
import { writeFileAtomic, type Expected, type WriteResult } from './atomic-write.js'
import type { DirSyncBatch } from './dir-sync.js'
import { readDiskEntry, sha256, type FileState } from './file-state.js'
import { resolvePeerPath } from './safe-path.js'
import type { FolderTrash } from './trash.js'

/**
 * What a peer's change does to the folder on this device: a text file's update merged into its
 * document and written out, a binary replaced (newest wins), always through a checked peer path
 * and an atomic write, and never over a local save that was not captured yet: such a save is
 * captured first (a text file) or kept as the winner (a binary), then the write goes on.
 */

/** The captured state of each path and a way to write without the write being seen as a local change (FolderWatcher). */
export interface CapturedStates {
  captured(path: string): FileState | undefined
  /** The document snapshot (encoded) whose text the file held when captured or written. */
  base(path: string): Uint8Array | undefined
  /** Run a write by the folder layer; its `state` (and `base`) become what is captured. */
  hold<T extends { state: FileState | undefined; base?: Uint8Array }>(path: string, write: () => Promise<T>): Promise<T>
}

export interface FolderContext {
  root: string
  device: string
  /** This device's next HLC stamp. */
  stamp: () => string
  /** Move this device's clock past a stamp received (so a local change made after it stamps later). */
  observe?: (stamp: string) => void
  states: CapturedStates
  trash?: FolderTrash
  caseInsensitive?: boolean
  /** While set (a batch of writes in progress), directory fsyncs wait for its flush (dir-sync.ts). */
  dirSyncs?: DirSyncBatch
  /**
   * While set (a batch of writes in progress, run in the folder's queue), paths already checked in
   * the batch, to their absolute path: checked once per file, not once per step.
   */
  resolved?: Map<string, string>
  /** While set (as `resolved`), directories already checked in the batch (safe-path.ts `checkedDirs`). */
  checkedDirs?: Set<string>
  /**
   * While set (as `resolved`), paths the check found empty, not looked at again by the first
   * captureIfChanged of the batch (the write's own check before its rename still is).
   */
  absent?: Set<string>
}

const encoder = new TextEncoder()
/** A save can land between our check and our rename again and again; past this, give up for now (the watcher reports it). */
const MAX_ATTEMPTS = 5

async function safeAbs(ctx: FolderContext, path: string): Promise<string> {
  const known = ctx.resolved?.get(path)
  if (known !== undefined) return known
  const r = await resolvePeerPath(ctx.root, path, {
    caseInsensitive: ctx.caseInsensitive === true,
    allowFinalSymlink: false,
    ...(ctx.checkedDirs === undefined ? {} : { checkedDirs: ctx.checkedDirs }),
    ...(ctx.absent === undefined ? {} : { absent: ctx.absent }),
  })
  if (!r.ok) throw unsafePath(path, r.reason)
  ctx.resolved?.set(path, r.abs)
  return r.abs
}

function expectedOf(ctx: FolderContext, path: string): Expected {
  return ctx.states.captured(path) ?? 'absent'
}

type HeldWrite = WriteResult & { state: FileState | undefined; base?: Uint8Array }

/**
 * An atomic write expecting what was captured, held so that the watcher does not report it; a
 * changed-under-us keeps the captured state. `base`: the document snapshot the data is the text of.
 */
async function heldWrite(
  ctx: FolderContext,
  path: string,
  abs: string,
  data: Uint8Array,
  options: { executable: boolean; useTrash: boolean; base?: Uint8Array },
): Promise<HeldWrite> {
  const expected = expectedOf(ctx, path)
  const trash = options.useTrash && ctx.trash !== undefined ? { trash: { trash: ctx.trash, path } } : {}
  return ctx.states.hold(path, async (): Promise<HeldWrite> => {
    const dirSyncs = ctx.dirSyncs === undefined ? {} : { dirSyncs: ctx.dirSyncs }
    const checkedDirs = ctx.checkedDirs === undefined ? {} : { checkedDirs: ctx.checkedDirs }
    const w = await writeFileAtomic(abs, data, { expected, executable: options.executable, ...trash, ...dirSyncs, ...checkedDirs })
    if (w.status !== 'written') return { ...w, state: expected === 'absent' ? undefined : expected }
    return options.base === undefined ? w : { ...w, base: options.base }
  })
}

/**
 * Capture the file's content into its document if it differs from what was captured: a local
 * save the watcher has not reported yet. True if the document changed.
 */
export async function captureIfChanged(ctx: FolderContext, path: string, doc: Y.Doc): Promise<boolean> {
  const abs = await safeAbs(ctx, path)
  const captured = ctx.states.captured(path)
  if (captured === undefined && ctx.absent?.delete(path) === true) return false
  const entry = await readDiskEntry(abs, Number.MAX_SAFE_INTEGER, captured)
  if (entry.kind !== 'file' || (captured !== undefined && entry.hash === captured.hash && entry.executable === captured.executable)) return false
  const bytes = await readFile(abs).catch(() => undefined)
  const text = bytes === undefined ? undefined : decodeText(bytes)
  if (bytes === undefined || text === undefined) return false
  // What the document takes is what was read: its hash, not the lstat's (a save may land in between).
  const state: FileState = { ...entry, size: bytes.byteLength, hash: sha256(bytes), binary: false }
  const base = ctx.states.base(path)
  const record = structuredKind(path) !== undefined
  const captured2 = captureText(doc, text, { device: ctx.device, stamp: ctx.stamp() }, base === undefined ? { record } : { base, record })
  await ctx.states.hold(path, async () => ({ state, base: captured2.base }))
  return captured2.changed
}

export type TextWriteOutcome = {
  /** Local saves captured (merged in) before the write: 'changed-under-us' happened this many times. */
  capturedFirst: number
  result: Extract<WriteResult, { status: 'written' }> | { status: 'unchanged' }
}

/** Write the document's text to disk, capturing (and so merging) any local save that landed first. */
export async function writeTextToDisk(ctx: FolderContext, path: string, doc: Y.Doc, executable = false): Promise<TextWriteOutcome> {
  const abs = await safeAbs(ctx, path)
  let capturedFirst = 0
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const base = currentBase(doc)
    const r = await heldWrite(ctx, path, abs, encoder.encode(fileText(doc)), { executable, useTrash: true, base })
    if (r.status === 'written') return { capturedFirst, result: r }
    capturedFirst++
    if (r.current.kind === 'file') {
      await captureIfChanged(ctx, path, doc)
    } else {
      // Deleted (or replaced by something that is not a file) locally, not captured yet: the
      // peer's content comes back as a new file, and the caller's delete capture is moot.
      await ctx.states.hold(path, async () => ({ state: undefined }))
    }
  }
  return { capturedFirst, result: { status: 'unchanged' } }
}

export interface RemoteTextOutcome {
  merge: RemoteMerge
  write: TextWriteOutcome
  /** The conflict file written beside it, when the JSON/YAML rule applied. */
  backup?: string
}

/**
 * A peer's update of a text file: capture a pending local save first, merge, apply the JSON/YAML
 * rule, write the file (and the conflict file).
 */
export async function applyRemoteText(ctx: FolderContext, path: string, doc: Y.Doc, update: Uint8Array, origin?: unknown): Promise<RemoteTextOutcome> {
  await captureIfChanged(ctx, path, doc)
  const merge = mergeRemoteUpdate(doc, path, update, { device: ctx.device, stamp: ctx.stamp() }, origin)
  return writeMerge(ctx, path, doc, merge)
}

/**
 * Peers' updates already merged into the document (the sync layer applies them to an open unit
 * before the folder layer hears of them): capture a pending local save first, then the JSON/YAML
 * rule against what the disk held (the captured base) and the capture stamps seen before
 * (captureStamps), then write the file (and the conflict file).
 */
export async function applyMergedText(
  ctx: FolderContext,
  path: string,
  doc: Y.Doc,
  seen: ReadonlyMap<string, string>,
  origin?: unknown,
): Promise<RemoteTextOutcome> {
  await captureIfChanged(ctx, path, doc)
  const base = ctx.states.base(path)
  const before = base === undefined ? '' : textAt(doc, base)
  const merge = settleMerge(doc, path, before, seen, { device: ctx.device, stamp: ctx.stamp() }, origin)
  return writeMerge(ctx, path, doc, merge)
}

async function writeMerge(ctx: FolderContext, path: string, doc: Y.Doc, merge: RemoteMerge): Promise<RemoteTextOutcome> {
  let backup: string | undefined
  if (merge.kind === 'conflict') {
    backup = await writeBackup(ctx, merge.backup.path, encoder.encode(merge.backup.text))
  }
  // The disk holds that text already (the record and the unit of one change, each handled): only the base moves.
  const captured = ctx.states.captured(path)
  const base = ctx.states.base(path)
  if (captured !== undefined && base !== undefined && textAt(doc, base) === merge.disk) {
    await ctx.states.hold(path, async () => ({ state: captured, base: merge.diskBase }))
    return backup === undefined
      ? { merge, write: { capturedFirst: 0, result: { status: 'unchanged' } } }
      : { merge, write: { capturedFirst: 0, result: { status: 'unchanged' } }, backup }
  }
  // The loser's device leaves the document to the winner's repair, and writes the winner's text.
  const write = merge.disk === fileText(doc) ? await writeTextToDisk(ctx, path, doc) : await writeExact(ctx, path, merge.disk, merge.diskBase)
  return backup === undefined ? { merge, write } : { merge, write, backup }
}

/**
 * Save a conflict's losing version at `path`. The same name with the same content is already
 * that file (the other device of the conflict saved it too); a different file there is left
 * alone and the version goes to `NAME-2.ext`, `NAME-3.ext`... Returns the path used.
 */
export async function writeBackup(ctx: FolderContext, path: string, data: Uint8Array): Promise<string> {
  const dot = path.lastIndexOf('.')
  const slash = path.lastIndexOf('/')
  for (let n = 1; n <= 20; n++) {
    const candidate = n === 1 ? path : dot > slash + 1 ? `${path.slice(0, dot)}-${n}${path.slice(dot)}` : `${path}-${n}`
    const abs = await safeAbs(ctx, candidate)
    const w = await heldWrite(ctx, candidate, abs, data, { executable: false, useTrash: false })
    if (w.status === 'written') return candidate
    const there = w.current.kind === 'file' ? await readFile(abs).catch(() => undefined) : undefined
    if (there !== undefined && Buffer.compare(there, data) === 0) return candidate
  }
  throw new KitsyncError('STORAGE_FAILED', `no free name for the conflict copy ${path}`)
}

async function writeExact(ctx: FolderContext, path: string, text: string, base: Uint8Array): Promise<TextWriteOutcome> {
  const r = await heldWrite(ctx, path, await safeAbs(ctx, path), encoder.encode(text), { executable: false, useTrash: true, base })
  return r.status === 'written' ? { capturedFirst: 0, result: r } : { capturedFirst: 1, result: { status: 'unchanged' } }
}

export type BinaryOutcome = { status: 'written'; state: FileState; backup?: string } | { status: 'kept-local'; backup: string }

/**
 * A peer's new version of a binary file: newest wins. Over the version last captured, the peer's
 * replaces it (the old one to the trash). Over a local change not captured yet, the two are
 * ordered by HLC: the local change gets this device's next stamp, after the peer's (observed
 * first), so it normally stays and the peer's version is saved as the backup; a peer stamp from
 * ahead of this clock wins, and the local version becomes the backup.
 */
export async function applyRemoteBinary(ctx: FolderContext, path: string, data: Uint8Array, remote: VersionSide, executable = false): Promise<BinaryOutcome> {
  const abs = await safeAbs(ctx, path)
  const w = await heldWrite(ctx, path, abs, data, { executable, useTrash: true })
  if (w.status === 'written') return { status: 'written', state: w.state }
  ctx.observe?.(remote.stamp)
  const local = { device: ctx.device, stamp: ctx.stamp() }
  const decision = decideNewestWins(path, local, remote)
  if (decision.winner === 'local') {
    const backup = await writeBackup(ctx, decision.backupPath, data)
    return { status: 'kept-local', backup }
  }
  // The peer's version wins: the local one is kept beside it first (as it is now), then replaced.
  const backup = await writeBackup(ctx, decision.backupPath, await readFile(abs))
  const now = await readDiskEntry(abs, Number.MAX_SAFE_INTEGER)
  await ctx.states.hold(path, async () => ({ state: now.kind === 'file' ? now : undefined }))
  const again = await heldWrite(ctx, path, abs, data, { executable, useTrash: false })
  if (again.status !== 'written') return { status: 'kept-local', backup }
  return { status: 'written', state: again.state, backup }
}
