import { diffLines } from 'diff'
import type * as Y from 'yjs'

/**
 * A text file's content as a Y.Text: what a local save changes is applied as a minimal edit, line
 * by line and then character by character inside each changed run of lines, so that two devices
 * that edit different lines of one file offline both keep their edits when their updates merge.
 * Replacing the whole text instead would make the two saves two concurrent whole rewrites: Yjs
 * would keep both, one after the other.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The file's text, or undefined for a binary: not valid UTF-8, or holding a NUL byte (as git decides). */
export function decodeText(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined
  try {
    return utf8.decode(bytes)
  } catch {
    // fatal: invalid UTF-8 is what makes a file binary here, not an error
    return undefined
  }
}

/**
 * A line diff of a large, much-changed text is quadratic: past this many milliseconds the edit is
 * applied as one replacement of the changed middle (still exact, only less mergeable).
 */
const DIFF_TIMEOUT_MS = 250

export interface TextEdit {
  /** Index in the text as it is when the edit applies (the edits before it already applied). */
  index: number
  delete: number
  insert: string
}

/** The edits that turn `from` into `to`, in order, each index valid after the previous ones. */
export function textEdits(from: string, to: string): TextEdit[] {
  if (from === to) return []
  // A new file (or one emptied): one insert or one delete, no line diff to run.
  if (from === '') return [{ index: 0, delete: 0, insert: to }]
  if (to === '') return [{ index: 0, delete: from.length, insert: '' }]
  const edits: TextEdit[] = []
  // Common head and tail first: most saves change a few lines, and the line diff then sees only them.
  const head = commonPrefix(from, to)
  const tail = commonSuffix(from, to, head)
  const headLine = head === 0 ? 0 : from.lastIndexOf('\n', head - 1) + 1
  const a = from.slice(headLine, from.length - tail)
  const b = to.slice(headLine, to.length - tail)
  const changes = diffLines(a, b, { timeout: DIFF_TIMEOUT_MS })
  if (changes === undefined) {
    pushReplace(edits, headLine, a, b)
    return edits
  }
  let pos = headLine
  let removed = ''
  let added = ''
  const flush = (): void => {
    if (removed.length > 0 || added.length > 0) pos = pushReplace(edits, pos, removed, added)
    removed = ''
    added = ''
  }
  for (const c of changes) {
    if (c.removed) removed += c.value
    else if (c.added) added += c.value
    else {
      flush()
      pos += c.value.length
    }
  }
  flush()
  return edits
}

/** Replace `removed` at `pos` by `added`, keeping their common start and end; returns the position after it. */
function pushReplace(edits: TextEdit[], pos: number, removed: string, added: string): number {
  const pre = commonPrefix(removed, added)
  const suf = commonSuffix(removed, added, pre)
  const del = removed.length - pre - suf
  const ins = added.slice(pre, added.length - suf)
  if (del > 0 || ins.length > 0) edits.push({ index: pos + pre, delete: del, insert: ins })
  return pos + added.length
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

/** Length of the common start, never splitting a surrogate pair. */
function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  let i = 0
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++
  if (i > 0 && i < n && isHighSurrogate(a.charCodeAt(i - 1))) i--
  return i
}

/** Length of the common end, not overlapping the first `skip` units of either, never splitting a surrogate pair. */
function commonSuffix(a: string, b: string, skip: number): number {
  const n = Math.min(a.length, b.length) - skip
  let i = 0
  while (i < n && a.charCodeAt(a.length - 1 - i) === b.charCodeAt(b.length - 1 - i)) i++
  if (i > 0 && i < n && isHighSurrogate(a.charCodeAt(a.length - 1 - i))) i--
  return i
}

/** Make `text` hold `to` by minimal edits (in the caller's transaction, if any). True if it changed. */
export function applyTextChange(text: Y.Text, to: string): boolean {
  const edits = textEdits(text.toString(), to)
  if (edits.length === 0) return false
  const apply = (): void => {
    for (const e of edits) {
      if (e.delete > 0) text.delete(e.index, e.delete)
      if (e.insert.length > 0) text.insert(e.index, e.insert)
    }
  }
  if (text.doc === null) apply()
  else text.doc.transact(apply)
  return true
}
