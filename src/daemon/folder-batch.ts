import { caseKey } from '../core/folder-paths.js'
import type { StampedEntry } from '../core/folder-manifest.js'
import { DirSyncBatch } from '../folder/dir-sync.js'
import type { FolderContext } from '../folder/incoming.js'

/** Files brought to disk together: their writes overlap. */
export const WRITE_BATCH = 64

/**
 * Bring many manifest entries to disk at once (a folder placed on a device, a start after files
 * arrived): text files and directories WRITE_BATCH at a time, concurrently, with the directory
 * fsyncs deferred to the end of the last batch (one per directory of the call, instead of one
 * per file, or per directory and batch: 1,000 files in 20 directories made 320 directory fsyncs,
 * each a journal commit that the next batch waited for); binaries
 * (which may keep a conflict copy and share it) one at a time after. Within a batch each path is
 * checked (safe-path.ts) once, not at every step of its write. Two entries whose paths are
 * the same (or differ only by case) never run in one batch. Each file's write keeps its checks
 * (atomic-write.ts): fsynced content, the changed-under-us check, an atomic rename. Runs inside
 * the engine's queue, so no other job of the folder runs meanwhile.
 */
export async function applyBatched(
  ctx: FolderContext,
  entries: readonly StampedEntry[],
  apply: (fileId: string) => Promise<void>,
  /** Called with each batch before its writes start (folder-prefetch.ts opens their documents together). */
  before?: (batch: readonly StampedEntry[]) => void,
): Promise<void> {
  const serial: StampedEntry[] = []
  let batch: StampedEntry[] = []
  let keys = new Set<string>()
  const dirSyncs = new DirSyncBatch()
  const run = async (): Promise<void> => {
    before?.(batch)
    ctx.dirSyncs = dirSyncs
    ctx.resolved = new Map()
    ctx.checkedDirs = new Set()
    ctx.absent = new Set()
    // Every write of the batch ends (settled) before the next batch, or the directories' fsyncs.
    const results = await Promise.allSettled(batch.map((e) => apply(e.fileId)))
    ctx.dirSyncs = undefined
    ctx.resolved = undefined
    ctx.checkedDirs = undefined
    ctx.absent = undefined
    const failed = results.find((r) => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    batch = []
    keys = new Set()
  }
  try {
    for (const e of entries) {
      if (e.kind === 'binary') {
        serial.push(e)
        continue
      }
      const key = caseKey(e.path)
      if (keys.has(key) || batch.length >= WRITE_BATCH) await run()
      keys.add(key)
      batch.push(e)
    }
    if (batch.length > 0) await run()
  } finally {
    // Before the job counts as done (the folder's state saying these files are written is saved after it), a failed one too.
    await dirSyncs.flush()
  }
  for (const e of serial) await apply(e.fileId)
}
