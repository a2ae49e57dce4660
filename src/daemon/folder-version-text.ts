import type * as Y from 'yjs'
import { debugLog } from '../core/debug-log.js'
import { textAt } from '../core/folder-text-doc.js'
import type { Units } from '../core/unit-types.js'
import type { CaptureLedger } from '../folder/capture-ledger.js'
import { sha256 } from '../folder/file-state.js'

const log = debugLog('folder:history')

/**
 * The content of a shared text file's versions (daemon/folder-history.ts): kept as the blob
 * under the version's hash (the manifest's `hash`, a SHA-256 of the file's bytes), like a
 * binary's, so `folder restore` reads any version the same way, and a device that lacks one
 * asks the connected peers for it (BLOB_WANT).
 */

/**
 * Largest text version kept as a blob. A larger text version is listed but its content is not
 * kept here: `restore` then asks the connected peers, and fails with NOT_FOUND when none has it.
 */
export const VERSION_TEXT_MAX = 1024 * 1024

const encoder = new TextEncoder()
/**
 * Hashes kept in the last KEPT_MS by this process, per store, with when (a repeat would write the
 * same blob again); forgotten past KEPT_MAX. Shorter than the store's blob grace
 * (store/blob-gc.ts): a blob skipped here was stored recently enough not to be collected.
 */
const kept = new WeakMap<object, Map<string, number>>()
const KEPT_MAX = 10_000
const KEPT_MS = 60_000

function keptRecently(units: object, hash: string): boolean {
  const at = kept.get(units)?.get(hash)
  return at !== undefined && Date.now() - at < KEPT_MS
}

type BlobPut = Pick<Units, 'putBlob'>

/** Keep a text file's content as the blob of its version `hash` (when it is that version and within VERSION_TEXT_MAX). */
export async function keepText(units: BlobPut, text: string | Uint8Array, hash: string | undefined): Promise<void> {
  let done = kept.get(units)
  if (done === undefined) kept.set(units, (done = new Map()))
  if (hash === undefined || hash === '' || keptRecently(units, hash)) return
  const bytes = typeof text === 'string' ? encoder.encode(text) : text
  if (bytes.byteLength > VERSION_TEXT_MAX || sha256(bytes) !== hash) return
  try {
    await units.putBlob(hash, bytes)
    if (done.size >= KEPT_MAX) done.clear()
    done.set(hash, Date.now())
  } catch (err) {
    log(`version ${hash.slice(0, 12)}: its text was not kept`, err)
  }
}

/**
 * Before the text on disk at `path` is replaced (a local save captured, a peer's version
 * written): keep what the disk held, rebuilt from the document at the base snapshot of that
 * state, and (`next`) the new text. A file's first capture or arrival keeps nothing: the
 * document holds its text, and its first change keeps it.
 */
export async function keepReplacedText(
  units: BlobPut,
  ledger: Pick<CaptureLedger, 'captured' | 'base'>,
  doc: Y.Doc,
  path: string,
  next?: { text: string | Uint8Array; hash: string | undefined },
): Promise<void> {
  const captured = ledger.captured(path)
  const base = ledger.base(path)
  if (captured?.hash === undefined || base === undefined) return
  if (!keptRecently(units, captured.hash)) await keepText(units, textAt(doc, base), captured.hash)
  if (next !== undefined && next.hash !== captured.hash) await keepText(units, next.text, next.hash)
}
