import type * as Y from 'yjs'
import type { StampedEntry } from '../core/folder-manifest.js'
import { newTextFileDoc } from '../core/folder-text-doc.js'
import type { Units } from '../core/unit-types.js'
import { docBytes, type UnitDocLru } from './unit-doc-lru.js'

/** Text files of a batch not open yet, below which their documents are opened one by one. */
export const PREFETCH_MIN = 8
/** The manifest's ids between a batch's first and last may be at most this many times the batch's, or it is not read as a span. */
const SPAN_FACTOR = 2

/** What the prefetch needs of a folder's engine (folder-engine.ts). */
export interface PrefetchTarget {
  readonly collection: string
  readonly units: Units
  readonly docs: UnitDocLru<Y.Doc>
  readonly entries: ReadonlyMap<string, StampedEntry>
  /** True once the engine stopped: a document read after that is closed again. */
  stopped(): boolean
}

/** Entries in fileId order (the units' key order): batches of applyBatched taken from it are spans of units. */
export function byFileId(entries: readonly StampedEntry[]): StampedEntry[] {
  return [...entries].sort((a, b) => (a.fileId < b.fileId ? -1 : a.fileId > b.fileId ? 1 : 0))
}

/** Index of the first id in `sorted` that is not below `id`. */
function lowerBound(sorted: readonly string[], id: string): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((sorted[mid] as string) < id) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * For applyBatched: before each batch of files is brought to disk, the documents of its text
 * files are opened together (Units.openMany: two range reads of the store instead of an
 * iterator and a get per file) and kept among the engine's open documents. Only when the batch
 * fills most of its span of the manifest's ids (the caller orders entries by fileId), so that
 * the read does not go through many other files' units; otherwise each is opened when written.
 *
 * Why: bringing a folder to a device that adds it (1,000 files) opened each file's unit on its
 * own, 1,000 iterators and 1,000 gets, each a trip through the thread pool that the file writes
 * of the same batch wait behind.
 */
export function docPrefetcher(target: PrefetchTarget): (batch: readonly StampedEntry[]) => void {
  let ids: string[] | undefined
  return (batch) => {
    if (target.units.openMany === undefined) return
    const wanted = batch.filter((e) => e.kind === 'text' && target.docs.peek(e.fileId) === undefined).map((e) => e.fileId)
    if (wanted.length < PREFETCH_MIN) return
    wanted.sort()
    ids ??= [...target.entries.keys()].sort()
    const span = lowerBound(ids, `${wanted[wanted.length - 1] as string}\0`) - lowerBound(ids, wanted[0] as string)
    if (span > SPAN_FACTOR * wanted.length) return
    for (const [id, opening] of target.units.openMany(target.collection, wanted, newTextFileDoc)) {
      opening.then(
        (doc) => {
          if (target.stopped()) target.units.close(target.collection, id)
          else if (target.docs.peek(id) === undefined) target.docs.set(id, doc, docBytes(doc))
        },
        () => undefined, // the file's own open (FolderEngine.doc) gets the failure
      )
    }
  }
}
