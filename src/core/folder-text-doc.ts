import * as Y from 'yjs'
import {
  decideStructuredMerge,
  isLater,
  isValidStructured,
  structuredKind,
  type StructuredKind,
  type StructuredMerge,
  type VersionSide,
} from './folder-conflicts.js'
import { applyTextChange } from './folder-text.js'

/**
 * The content document of one text file: a Y.Text `text`, and a Y.Map `captures` holding, per
 * device, its last captured version of a JSON or YAML file: `{t: HLC stamp, s: Yjs snapshot of
 * the document then}`.
 *
 * The document keeps deleted text (a `gcFilter` that spares the Y.Text's items; everything else,
 * such as replaced capture entries, is collected as usual), so that the text at any snapshot can
 * be rebuilt (`Y.createDocFromSnapshot`). Two things need that: the JSON/YAML rule (a merge that
 * breaks a file keeps the latest side's version, and an update alone does not say what the
 * sender's whole text was), and rebasing a local save onto a document that moved on since the
 * file was written (`captureText` with a `base`). The cost is the deleted text (measured in
 * docs/design/folders.md), bounded by the storage layer's compaction epochs. A document loaded
 * from storage must be made by `newTextFileDoc` so that it keeps the same rule.
 */

export const TEXT_NAME = 'text'
export const CAPTURES_NAME = 'captures'
const TEXT_DOC_GUID = 'kitsync-text-file'

interface Capture {
  t: string
  s: Uint8Array
}

/** Keep deleted items of the text (snapshots need them); collect the rest. */
function keepDeletedText(item: Y.Item): boolean {
  return !(item.parent instanceof Y.Text)
}

export function newTextFileDoc(): Y.Doc {
  // A fixed guid: Yjs only uses it for subdocuments (none here), and a random one costs ~30
  // getRandomValues calls per document (a tenth of a folder's first sync of 1,000 files).
  const doc = new Y.Doc({ gcFilter: keepDeletedText, guid: TEXT_DOC_GUID })
  // Defined before any stored or received update is applied: until `getText` is called, Yjs
  // holds the root as a plain AbstractType, keepDeletedText does not recognise its items, and
  // deleting text in a document loaded from updates collected it (a rebase from a base taken
  // before the delete then lost that text: test/unit/folder-text.test.ts).
  doc.getText(TEXT_NAME)
  doc.getMap(CAPTURES_NAME)
  return doc
}

export function fileText(doc: Y.Doc): string {
  return doc.getText(TEXT_NAME).toString()
}

function captures(doc: Y.Doc): Y.Map<Capture> {
  return doc.getMap<Capture>(CAPTURES_NAME)
}

function readCapture(value: unknown): Capture | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const c = value as Partial<Capture>
  return typeof c.t === 'string' && c.s instanceof Uint8Array ? { t: c.t, s: c.s } : undefined
}

/** The last capture of `device`: its stamp. */
export function captureOf(doc: Y.Doc, device: string): VersionSide | undefined {
  const c = readCapture(captures(doc).get(device))
  return c === undefined ? undefined : { device, stamp: c.t }
}

/** The text `device` had when it last captured, rebuilt from its snapshot. */
export function capturedText(doc: Y.Doc, device: string): string | undefined {
  const c = readCapture(captures(doc).get(device))
  if (c === undefined) return undefined
  return textAt(doc, c.s)
}

/**
 * A new document holding what `doc` held at `snapshot` (same item ids). createDocFromSnapshot
 * refuses a document with gc on, because collected items could be needed; every item it reads
 * for the text is kept by keepDeletedText, so the flag is lowered for the call
 * (test/unit/folder-text.test.ts fails if Yjs comes to read more than that).
 */
function forkAt(doc: Y.Doc, snapshot: Y.Snapshot): Y.Doc {
  const gc = doc.gc
  doc.gc = false
  try {
    return Y.createDocFromSnapshot(doc, snapshot, new Y.Doc({ guid: doc.guid }))
  } finally {
    doc.gc = gc
  }
}

/** The text the document had at a snapshot (encoded). */
export function textAt(doc: Y.Doc, snapshot: Uint8Array): string {
  const past = forkAt(doc, Y.decodeSnapshot(snapshot))
  try {
    return past.getText(TEXT_NAME).toString()
  } finally {
    past.destroy()
  }
}

/** The document's current snapshot, encoded: what a `base` is when the disk holds the document's text. */
export function currentBase(doc: Y.Doc): Uint8Array {
  return Y.encodeSnapshot(Y.snapshot(doc))
}

export interface CaptureOptions {
  origin?: unknown
  /**
   * The snapshot of the document that the file on disk held before this save (the last capture
   * or write of it). When the document moved on since (a peer's edit not written out yet), the
   * save is applied as the edits from that base, rebased onto the document, instead of as a diff
   * from the document's current text, which would undo the peer's edit.
   */
  base?: Uint8Array
  /** Record this device's capture (JSON and YAML files, for the conflict rule; default true). */
  record?: boolean
}

/**
 * A local save of the file: apply it as minimal edits and record this device's capture. The
 * stamp must come from the device's HLC. Returns whether the text changed, and the new base: the
 * snapshot whose text is what the disk now holds.
 */
export function captureText(doc: Y.Doc, text: string, side: VersionSide, options: CaptureOptions = {}): { changed: boolean; base: Uint8Array } {
  let changed = false
  let base: Uint8Array = new Uint8Array()
  doc.transact(() => {
    const ytext = doc.getText(TEXT_NAME)
    if (options.base === undefined || textAt(doc, options.base) === ytext.toString()) {
      changed = applyTextChange(ytext, text)
      base = currentBase(doc)
    } else {
      // Rebase: edit a copy of the document as it was at the base, and merge the copy's edits.
      // The copy's items keep their ids, so its insertions land where they were made.
      const baseSnapshot = Y.decodeSnapshot(options.base)
      const fork = forkAt(doc, baseSnapshot)
      try {
        changed = applyTextChange(fork.getText(TEXT_NAME), text)
        Y.applyUpdate(doc, Y.encodeStateAsUpdate(fork, Y.encodeStateVector(baseSnapshot.sv)))
        base = Y.encodeSnapshot(Y.snapshot(fork))
      } finally {
        fork.destroy()
      }
    }
    if (changed && options.record !== false) captures(doc).set(side.device, { t: side.stamp, s: base })
  }, options.origin)
  return { changed, base }
}

export type RemoteMerge = StructuredMerge & {
  /** The text before and after the update applied. */
  before: string
  merged: string
  /** What the file on disk should now hold. */
  disk: string
  /** The snapshot (encoded) whose text is `disk`: the base of the next local save. */
  diskBase: Uint8Array
}

/**
 * Apply a peer's update to the file's document, then the JSON/YAML rule. `self` is this device
 * and its next stamp (used only if its own version wins and is restored).
 *
 * Exactly one device repairs the document, so that two repairs do not insert the winning text
 * twice: the device whose version won. It restores its text as a new capture (which syncs). A
 * device whose version lost writes the winner's text to disk and leaves the document to the
 * winner's repair; both save the loser's text as the conflict file (the same name and content on
 * both, so the folder layer takes them for one file).
 */
export function mergeRemoteUpdate(doc: Y.Doc, path: string, update: Uint8Array, self: VersionSide, origin?: unknown): RemoteMerge {
  const before = fileText(doc)
  const beforeCaptures = captureStamps(doc)
  Y.applyUpdate(doc, update, origin)
  return settleMerge(doc, path, before, beforeCaptures, self, origin)
}

/** Each device's last capture stamp in the document (what a later settleMerge compares against). */
export function captureStamps(doc: Y.Doc): Map<string, string> {
  const out = new Map<string, string>()
  captures(doc).forEach((c, device) => {
    const r = readCapture(c)
    if (r !== undefined) out.set(device, r.t)
  })
  return out
}

/**
 * The JSON/YAML rule over a document that peers' updates were already merged into (the sync
 * layer applies them to an open unit before telling the folder layer): `before` is this
 * device's text before them (what its disk held), `beforeCaptures` the capture stamps it had
 * seen then (captureStamps). Same outcome as mergeRemoteUpdate.
 */
export function settleMerge(
  doc: Y.Doc,
  path: string,
  before: string,
  beforeCaptures: ReadonlyMap<string, string>,
  self: VersionSide,
  origin?: unknown,
): RemoteMerge {
  const merged = fileText(doc)
  const plain = { before, merged, disk: merged, diskBase: currentBase(doc) }
  if (merged === before || structuredKind(path) === undefined) return { kind: 'merged', ...plain }
  // The other side: the latest capture this update brought, by a device other than this one.
  let remote: VersionSide | undefined
  captures(doc).forEach((c, device) => {
    const r = readCapture(c)
    if (r === undefined || device === self.device || beforeCaptures.get(device) === r.t) return
    const side = { device, stamp: r.t }
    if (remote === undefined || isLater(side, remote)) remote = side
  })
  if (remote === undefined) return { kind: 'merged', ...plain }
  // The rule applies only to a merge that broke the file: a valid one needs no text rebuilt from
  // a snapshot (most updates, and every file arriving on a device that adds the folder). Nor does
  // one over nothing here: '' is not JSON, so the rule keeps the merge (decideStructuredMerge),
  // and a JSON file arriving on such a device is not parsed.
  const kind = structuredKind(path) as StructuredKind
  if ((kind === 'json' && before === '') || isValidStructured(kind, merged)) return { kind: 'merged', ...plain }
  const remoteText = capturedText(doc, remote.device)
  if (remoteText === undefined) return { kind: 'merged', ...plain }
  const local = captureOf(doc, self.device) ?? { device: self.device, stamp: '' }
  const decision = decideStructuredMerge(path, merged, { ...local, text: before }, { ...remote, text: remoteText })
  if (decision.kind === 'merged') return { ...decision, ...plain }
  if (decision.winner === 'local') {
    const { base } = captureText(doc, decision.keep, self, { origin })
    return { ...decision, before, merged, disk: decision.keep, diskBase: base }
  }
  const remoteBase = readCapture(captures(doc).get(remote.device))?.s ?? currentBase(doc)
  return { ...decision, before, merged, disk: decision.keep, diskBase: remoteBase }
}
