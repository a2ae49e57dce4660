import * as Y from 'yjs'
import { structuredKind } from '../core/folder-conflicts.js'
import type { ManifestWrite, StampedEntry } from '../core/folder-manifest.js'
import { captureText, fileText, newTextFileDoc } from '../core/folder-text-doc.js'
import type { JsonValue } from '../core/json.js'
import type { UnitUpdate } from '../core/unit-types.js'
import type { CaptureLedger } from '../folder/capture-ledger.js'
import { readFileState, type DiskEntry } from '../folder/file-state.js'
import type { FolderHost } from './folder-host.js'
import { keepReplacedText } from './folder-version-text.js'

/**
 * Local saves taken into the workspace: a file read once (state and bytes from one open, hashed
 * once), its text captured into its unit document, or a binary's bytes stored as a blob. The reads
 * of a batch run ahead of the captures (folder/read-ahead.ts), so a folder's first scan of
 * 10,000 files is not 10,000 reads one after the other. A file that is new here (a `create`
 * write: a fresh random fileId, nothing stored under it) gets a new document, not a load of a
 * unit that cannot exist, and is not kept open: its next use loads what the commit stored.
 */

/** What capture needs of its folder's engine (folder-engine.ts). */
export interface CaptureEngine {
  readonly host: FolderHost
  readonly entries: Map<string, StampedEntry>
  readonly owner: Map<string, string>
  readonly ledger: CaptureLedger
  abs(path: string, readNoFollow?: boolean): Promise<string | undefined>
  doc(fileId: string): Promise<Y.Doc>
}

/** Documents of files new in this batch (by fileId): a second capture of one in the batch continues it. */
export type FreshDocs = Map<string, Y.Doc>

/** A file read ahead for its capture (undefined: its path was refused). */
export type CaptureRead = { abs: string; entry: DiskEntry; bytes?: Buffer; text?: string } | undefined

export type Captured = { update?: UnitUpdate; fields?: Record<string, JsonValue>; behind?: boolean } | undefined

/** The path whose content a manifest write takes from the disk, or undefined (a delete, a directory, a rename alone). */
export function captureTarget(w: ManifestWrite, before: StampedEntry | undefined): string | undefined {
  const fields = w.op === 'create' ? w.entry : w.fields
  const path = typeof fields.path === 'string' ? fields.path : before?.path
  if (path === undefined) return undefined
  if (fields.deleted !== undefined && fields.deleted !== null) return undefined
  const kind = fields.kind ?? before?.kind
  if (kind === 'dir' || (w.op === 'update' && fields.hash === undefined)) return undefined
  return path
}

/** Read a file for its capture, through a checked path. */
export async function readForCapture(engine: Pick<CaptureEngine, 'abs'>, path: string): Promise<CaptureRead> {
  const abs = await engine.abs(path, true)
  if (abs === undefined) return undefined
  return { abs, ...(await readFileState(abs)) }
}

/**
 * Capture a file's content (read by readForCapture) into its document; the update to commit
 * (none: nothing changed) and the record's content fields. `isNew`: the fileId was made for this
 * batch (nothing stored under it); its document is kept in `fresh` until the batch is committed.
 */
export async function captureFile(engine: CaptureEngine, fileId: string, path: string, read: CaptureRead, fresh: FreshDocs, isNew: boolean): Promise<Captured> {
  if (read === undefined || read.entry.kind !== 'file' || read.bytes === undefined) return undefined
  const state = read.entry
  const bytes = read.bytes
  const text = read.text
  const fields: Record<string, JsonValue> = {
    kind: text === undefined ? 'binary' : 'text',
    size: state.size,
    hash: state.hash as string,
    x: state.executable,
  }
  if (text === undefined) {
    // `prev`: the version this one replaces, so a device holding another sees two concurrent versions.
    const before = engine.entries.get(fileId)
    Object.assign(fields, { prev: before !== undefined && before.kind === 'binary' ? before.hash : '' })
    engine.owner.set(path, fileId)
    await engine.host.units.putBlob(state.hash as string, bytes)
    await engine.ledger.hold(path, async () => ({ state }))
    return { fields }
  }
  engine.owner.set(path, fileId)
  let doc = fresh.get(fileId)
  let sv: Uint8Array | undefined
  const created = doc === undefined && isNew
  if (doc === undefined && isNew) {
    doc = newTextFileDoc()
    fresh.set(fileId, doc)
  } else {
    doc ??= await engine.doc(fileId)
    sv = Y.encodeStateVector(doc)
  }
  const base = engine.ledger.base(path)
  const record = structuredKind(path) !== undefined
  if (!created) await keepReplacedText(engine.host.units, engine.ledger, doc, path, { text: bytes, hash: state.hash }) // file history
  const side = { device: engine.host.deviceId, stamp: engine.host.stamp() }
  const r = captureText(doc, text, side, base === undefined ? { record } : { base, record })
  await engine.ledger.hold(path, async () => ({ state, base: r.base }))
  // Rebased onto a document that moved on (a peer's edit not written here yet): the disk is behind it.
  const behind = fileText(doc) !== text
  if (!r.changed) return { fields, behind }
  return { update: { unit: fileId, update: sv === undefined ? Y.encodeStateAsUpdate(doc) : Y.encodeStateAsUpdate(doc, sv) }, fields, behind }
}
