import { watch, type FSWatcher } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * A tree of non-recursive `fs.watch` watchers, one per directory (inotify on Linux, through
 * libuv): every event reaches the caller as the relative path it names, at once, none dropped.
 *
 * Why not a library: chokidar 4 drops a file's second 'change' within 50 ms instead of
 * reporting it late (two saves 20 ms apart were reported as the first one only, and the final
 * content never), chokidar 5 and 6 need a newer Node than kitsync supports, and Node 20's own
 * `fs.watch(recursive)` polls every file with a stat watcher on Linux. The folder watcher above
 * this does the coalescing itself, by re-reading what an event names (folder/folder-watcher.ts).
 */
export class DirTreeWatch {
  private readonly watchers = new Map<string, FSWatcher>()
  private closed = false

  constructor(
    private readonly root: string,
    /** Whether a directory is watched at all (excluded ones are pruned with all under them). */
    private readonly include: (rel: string) => boolean,
    /** A path something happened to: a file or a directory, possibly gone already. */
    private readonly onEvent: (rel: string) => void,
    private readonly onError: (err: Error, rel: string) => void,
  ) {}

  /** Watch `rel` (the root is '') and the directories under it; returns the directories added. */
  async add(rel: string): Promise<string[]> {
    const added: string[] = []
    const visit = async (dir: string): Promise<void> => {
      if (this.closed || this.watchers.has(dir) || (dir !== '' && !this.include(dir))) return
      if (!this.watchOne(dir)) return
      added.push(dir)
      let entries
      try {
        entries = await readdir(this.abs(dir), { withFileTypes: true })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'ENOTDIR') return this.remove(dir)
        throw err
      }
      for (const e of entries) if (e.isDirectory()) await visit(dir === '' ? e.name : `${dir}/${e.name}`)
    }
    await visit(rel)
    return added
  }

  /** Stop watching `rel` and everything under it. */
  remove(rel: string): void {
    for (const [dir, w] of this.watchers) {
      if (rel === '' || dir === rel || dir.startsWith(`${rel}/`)) {
        w.close()
        this.watchers.delete(dir)
      }
    }
  }

  has(rel: string): boolean {
    return this.watchers.has(rel)
  }

  get size(): number {
    return this.watchers.size
  }

  close(): void {
    this.closed = true
    this.remove('')
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel)
  }

  private watchOne(dir: string): boolean {
    let w: FSWatcher
    try {
      w = watch(this.abs(dir), { persistent: true }, (_type, name) => {
        if (this.closed) return
        // No name (some kernels, on overflow): the whole directory is to be looked at again.
        if (name === null) this.onEvent(dir)
        else this.onEvent(dir === '' ? name.toString() : `${dir}/${name.toString()}`)
      })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return false
      this.onError(err as Error, dir)
      return false
    }
    w.on('error', (err) => {
      // A watched directory that was removed ends its watcher; its parent reports the removal.
      w.close()
      this.watchers.delete(dir)
      if ((err as NodeJS.ErrnoException).code !== 'EPERM' && (err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err, dir)
      this.onEvent(dir)
    })
    this.watchers.set(dir, w)
    return true
  }
}
