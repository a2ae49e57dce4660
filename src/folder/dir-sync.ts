import { open } from 'node:fs/promises'

/**
 * Directory fsyncs of a batch of writes (a rename or a new entry survives a power cut only once
 * its directory is fsynced): each directory touched is synced once, at `flush`, instead of once
 * per file. Whoever batches flushes before the batch counts as done (before the folder's state
 * saying the files were written is saved). A file's own content is still fsynced before its
 * rename (atomic-write.ts), so a crash at any point leaves the old or the new content.
 */
export class DirSyncBatch {
  private readonly dirs = new Set<string>()

  add(dir: string): void {
    this.dirs.add(dir)
  }

  get size(): number {
    return this.dirs.size
  }

  /** fsync every directory added since the last flush (concurrently). */
  async flush(): Promise<void> {
    const dirs = [...this.dirs]
    this.dirs.clear()
    await Promise.all(dirs.map((d) => syncDir(d)))
  }
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
