import { join } from 'node:path'
import { TypedEmitter } from '../core/emitter.js'
import type { FolderSelection, FolderSelectionOptions } from '../core/folder-selection.js'
import { IGNORE_FILE } from '../core/folder-selection.js'
import { debugLog } from '../core/debug-log.js'
import { DirTreeWatch } from './dir-watch.js'
import { lstatEntry, readDiskEntry, sameContent, type FileState, type Looked } from './file-state.js'
import { loadSelection, scanFolder, type Skipped, type SkipReason } from './scan.js'

const log = debugLog('folder:watch')

/**
 * What changed in a shared folder, as settled batches: every editor's way of saving a file (in
 * place, truncate and write, a temp file renamed over it, vim's rename to a backup and write
 * anew) is one 'modified' of the final content, because an event only marks its path dirty and
 * the path is read again once the folder has been quiet for `settleMs` (at most `maxDelayMs`
 * after the first event). A removal and an addition of the same content in one batch are a
 * rename. A file that turns into a symlink, grows past the size cap or becomes excluded is
 * reported as 'excluded': the folder layer must not take that as a delete to send.
 */
export type FolderChange =
  | { kind: 'added' | 'modified'; path: string; state: FileState }
  | { kind: 'removed'; path: string; previous: FileState }
  | { kind: 'renamed'; path: string; from: string; state: FileState }
  | { kind: 'excluded'; path: string; reason: SkipReason; previous?: FileState }
  | { kind: 'dir-added' | 'dir-removed'; path: string }

export interface FolderWatcherEvents {
  changes: FolderChange[]
  /** A watcher could not be set up or failed; a full rescan follows. */
  error: Error
}

export interface FolderWatcherOptions extends Omit<FolderSelectionOptions, 'ignoreFile'> {
  /** Quiet time before dirty paths are read again (default 15 ms). */
  settleMs?: number
  /** Longest wait after the first event of a batch (default 50 ms): a steady writer still gets reported. */
  maxDelayMs?: number
  /**
   * A full rescan this often (default: never). inotify misses some changes (a write through a
   * hard link outside the folder) and Node does not report a queue overflow; a rescan with the
   * stored hashes takes 0.3 s for 10,000 files.
   */
  rescanIntervalMs?: number
}

export class FolderWatcher extends TypedEmitter<FolderWatcherEvents> {
  private readonly files = new Map<string, FileState>()
  private readonly dirs = new Set<string>()
  private selection!: FolderSelection
  private skipped: Skipped[] = []
  private tree: DirTreeWatch | undefined
  private dirty = new Set<string>()
  private quietTimer: ReturnType<typeof setTimeout> | undefined
  private maxTimer: ReturnType<typeof setTimeout> | undefined
  private rescanTimer: ReturnType<typeof setInterval> | undefined
  private flushing: Promise<void> | undefined
  private readonly held = new Map<string, number>()
  /** What somethingWent saw of the batch's paths (lstatEntry), for check to use. */
  private readonly looked = new Map<string, Looked>()
  private rescanDue = false
  /** This batch was put off once because a known path was missing (see flush). */
  private deferred = false
  private stopped = false
  private readonly settleMs: number
  private readonly maxDelayMs: number

  constructor(
    readonly root: string,
    private options: FolderWatcherOptions = {},
  ) {
    super()
    this.settleMs = options.settleMs ?? 15
    this.maxDelayMs = options.maxDelayMs ?? 50
  }

  /** Watch first, then scan: nothing that happens during the scan is missed. Resolves once both are done. */
  async start(): Promise<void> {
    this.selection = await loadSelection(this.root, this.options)
    this.tree = new DirTreeWatch(
      this.root,
      (rel) => this.selection.directory(rel).included,
      (rel) => this.mark(rel),
      (err) => this.failed(err),
    )
    await this.tree.add('')
    const scan = await scanFolder(this.root, this.selection)
    for (const [p, s] of scan.files) this.files.set(p, s)
    for (const d of scan.dirs) this.dirs.add(d)
    this.skipped = scan.skipped
    if (this.options.rescanIntervalMs !== undefined) {
      this.rescanTimer = setInterval(() => {
        this.rescanDue = true
        this.schedule()
      }, this.options.rescanIntervalMs)
      this.rescanTimer.unref()
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.rescanTimer)
    this.tree?.close()
    clearTimeout(this.quietTimer)
    clearTimeout(this.maxTimer)
    await this.flushing
  }

  /** The state last seen at `path` (what changes are told against; what a document captured is the ledger's, folder/capture-ledger.ts). */
  known(path: string): FileState | undefined {
    return this.files.get(path)
  }

  /** The selection in force (undefined before start). */
  selectionNow(): FolderSelection | undefined {
    return this.selection as FolderSelection | undefined
  }

  /** What the last full scan left out, and why (symlinks, excluded files). */
  skippedNow(): readonly Skipped[] {
    return this.skipped
  }

  /** Every file seen. */
  snapshot(): ReadonlyMap<string, FileState> {
    return this.files
  }

  /**
   * Run a write of `path` by the folder layer itself: events it causes are not reported as local
   * changes; what it returns becomes the state seen (undefined: the path is gone).
   */
  async hold<T extends { state: FileState | undefined }>(path: string, write: () => Promise<T>): Promise<T> {
    this.held.set(path, (this.held.get(path) ?? 0) + 1)
    try {
      const result = await write()
      if (result.state === undefined) this.files.delete(path)
      else this.files.set(path, result.state)
      return result
    } finally {
      const n = (this.held.get(path) ?? 1) - 1
      if (n === 0) this.held.delete(path)
      else this.held.set(path, n)
    }
  }

  /** Wait for the batch in progress and any pending one (tests, and a clean stop). */
  async settled(): Promise<void> {
    while (this.flushing !== undefined || this.dirty.size > 0) {
      if (this.flushing === undefined) this.flushNow()
      await this.flushing
      // A path held by a write in progress stays dirty: give that write's I/O a turn, or this
      // loop would run on microtasks alone and starve it.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  /**
   * New globs or size cap (the folder's shared definition changed): a rescan under them. A file
   * they leave out now comes back as `excluded`; one they take in now, as `added`.
   */
  async reconfigure(selection: Pick<FolderWatcherOptions, 'include' | 'exclude' | 'maxFileSize'> | undefined): Promise<FolderChange[]> {
    if (selection === undefined || this.stopped) return []
    this.options = { ...this.options, include: selection.include, exclude: selection.exclude, maxFileSize: selection.maxFileSize }
    return this.rescan()
  }

  /** A full rescan, diffed against what was captured: for a watcher error and a changed .kitsyncignore. */
  async rescan(): Promise<FolderChange[]> {
    this.selection = await loadSelection(this.root, this.options)
    const scan = await scanFolder(this.root, this.selection, this.files)
    const changes: FolderChange[] = []
    this.skipped = scan.skipped
    const skippedWhy = new Map(scan.skipped.map((s) => [s.path, s.reason]))
    for (const [p, prev] of this.files) {
      if (scan.files.has(p) || this.held.has(p)) continue
      const why = skippedWhy.get(p)
      changes.push(why === undefined ? { kind: 'removed', path: p, previous: prev } : { kind: 'excluded', path: p, reason: why, previous: prev })
      this.files.delete(p)
    }
    for (const [p, s] of scan.files) {
      if (this.held.has(p)) continue
      const prev = this.files.get(p)
      if (prev === undefined) changes.push({ kind: 'added', path: p, state: s })
      else if (!sameContent(prev, s)) changes.push({ kind: 'modified', path: p, state: s })
      this.files.set(p, s)
    }
    for (const d of this.dirs) if (!scan.dirs.has(d)) changes.push({ kind: 'dir-removed', path: d })
    for (const d of scan.dirs) if (!this.dirs.has(d)) changes.push({ kind: 'dir-added', path: d })
    this.dirs.clear()
    for (const d of scan.dirs) this.dirs.add(d)
    await this.tree?.add('')
    return pairRenames(changes)
  }

  private failed(err: Error): void {
    log('watcher failed; rescanning the folder', err)
    this.emit('error', err)
    this.rescanDue = true
    this.schedule()
  }

  private mark(rel: string): void {
    if (this.stopped) return
    this.dirty.add(rel)
    this.schedule()
  }

  private schedule(): void {
    clearTimeout(this.quietTimer)
    this.quietTimer = setTimeout(() => this.flushNow(), this.settleMs)
    this.maxTimer ??= setTimeout(() => this.flushNow(), this.maxDelayMs)
  }

  private flushNow(): void {
    clearTimeout(this.quietTimer)
    clearTimeout(this.maxTimer)
    this.quietTimer = undefined
    this.maxTimer = undefined
    if (this.flushing !== undefined) {
      // One batch at a time: what arrives meanwhile is the next batch.
      void this.flushing.then(() => this.schedule())
      return
    }
    this.flushing = this.flush()
      .then((changes) => {
        if (changes.length > 0 && !this.stopped) this.emit('changes', changes)
      })
      .catch((err: unknown) => this.failed(err as Error))
      .finally(() => {
        this.flushing = undefined
      })
  }

  private async flush(): Promise<FolderChange[]> {
    const paths = [...this.dirty].sort()
    this.dirty = new Set()
    if (this.rescanDue || paths.includes(IGNORE_FILE)) {
      this.rescanDue = false
      return this.rescan()
    }
    if (!this.deferred && (await this.somethingWent(paths))) {
      // A known path is gone: wait one more quiet window before telling it. An editor that
      // renames the file away and writes it anew (vim, emacs) then shows as one 'modified' even
      // when its steps are slow, and a move shows whole (both ends in one batch: a rename).
      this.deferred = true
      for (const p of paths) this.mark(p)
      return []
    }
    this.deferred = false
    const changes: FolderChange[] = []
    for (const p of paths) {
      if (this.held.has(p)) {
        // Our own write is in progress; look again after it.
        this.mark(p)
        continue
      }
      await this.check(p, changes, this.looked.get(p))
    }
    this.looked.clear()
    return pairRenames(changes)
  }

  /** Whether a known path of the batch is gone; what it saw of the others is kept for check (one lstat per path). */
  private async somethingWent(paths: string[]): Promise<boolean> {
    this.looked.clear()
    for (const p of paths) {
      if (!this.files.has(p) && !this.dirs.has(p)) continue
      const e = await lstatEntry(join(this.root, p))
      if (e.kind === 'missing') {
        this.looked.clear()
        return true
      }
      this.looked.set(p, e)
    }
    return false
  }

  private async check(path: string, changes: FolderChange[], looked?: Looked): Promise<void> {
    if (path === '') {
      // An event at the root without a name: look at everything again.
      this.rescanDue = true
      this.schedule()
      return
    }
    // Neither known nor anything the selection would take (our own temp files, excluded names): nothing to look at.
    if (!this.files.has(path) && !this.dirs.has(path) && !this.selection.path(path).included && !this.selection.directory(path).included) return
    const abs = join(this.root, path)
    const entry = looked ?? (await lstatEntry(abs))
    if (entry.kind === 'dir') {
      if (!this.selection.directory(path).included) return
      if (!this.dirs.has(path)) {
        this.dirs.add(path)
        changes.push({ kind: 'dir-added', path })
      }
      if (this.tree?.has(path) !== true) {
        // A directory that appeared (or was moved in): watch it, then take in what it holds.
        await this.tree?.add(path)
        const sub = await scanFolder(this.root, this.selection, undefined, path)
        for (const d of sub.dirs) {
          if (this.dirs.has(d)) continue
          this.dirs.add(d)
          changes.push({ kind: 'dir-added', path: d })
        }
        for (const p of sub.files.keys()) await this.checkFile(p, changes)
      }
      return
    }
    if (this.dirs.has(path)) {
      // A directory that went (removed or moved away): everything under it went with it.
      this.tree?.remove(path)
      for (const d of [...this.dirs]) {
        if (d !== path && !d.startsWith(`${path}/`)) continue
        this.dirs.delete(d)
        changes.push({ kind: 'dir-removed', path: d })
      }
      for (const [p, prev] of [...this.files]) {
        if (!p.startsWith(`${path}/`)) continue
        this.files.delete(p)
        changes.push({ kind: 'removed', path: p, previous: prev })
      }
    }
    await this.checkFile(path, changes, entry)
  }

  private async checkFile(path: string, changes: FolderChange[], looked?: Looked): Promise<void> {
    const prev = this.files.get(path)
    const byPath = this.selection.path(path)
    if (!byPath.included) {
      if (prev === undefined) return
      this.files.delete(path)
      changes.push({ kind: 'excluded', path, reason: byPath.reason, previous: prev })
      return
    }
    const entry = await readDiskEntry(join(this.root, path), this.selection.maxFileSize, prev, undefined, looked)
    if (entry.kind === 'missing') {
      if (prev === undefined) return
      this.files.delete(path)
      changes.push({ kind: 'removed', path, previous: prev })
      return
    }
    if (entry.kind !== 'file') {
      if (entry.kind === 'dir') return
      const reason: SkipReason = entry.kind === 'symlink' ? 'symlink' : 'special'
      this.files.delete(path)
      changes.push(prev === undefined ? { kind: 'excluded', path, reason } : { kind: 'excluded', path, reason, previous: prev })
      return
    }
    const d = this.selection.file(path, { size: entry.size, binary: entry.binary ?? false })
    if (!d.included) {
      this.files.delete(path)
      changes.push(prev === undefined ? { kind: 'excluded', path, reason: d.reason } : { kind: 'excluded', path, reason: d.reason, previous: prev })
      return
    }
    this.files.set(path, entry)
    if (prev === undefined) changes.push({ kind: 'added', path, state: entry })
    else if (!sameContent(prev, entry)) changes.push({ kind: 'modified', path, state: entry })
  }
}

/** A removal and an addition with the same content (and only one such pair) in one batch: a rename. */
export function pairRenames(changes: FolderChange[]): FolderChange[] {
  const removedByHash = new Map<string, number[]>()
  const addedByHash = new Map<string, number[]>()
  changes.forEach((c, i) => {
    if (c.kind === 'removed' && c.previous.hash !== undefined) removedByHash.set(c.previous.hash, [...(removedByHash.get(c.previous.hash) ?? []), i])
    if (c.kind === 'added' && c.state.hash !== undefined) addedByHash.set(c.state.hash, [...(addedByHash.get(c.state.hash) ?? []), i])
  })
  const drop = new Set<number>()
  const out = [...changes]
  for (const [hash, removed] of removedByHash) {
    const added = addedByHash.get(hash)
    if (removed.length !== 1 || added?.length !== 1) continue
    const r = changes[removed[0] as number]
    const a = changes[added[0] as number]
    if (r?.kind !== 'removed' || a?.kind !== 'added') continue
    out[added[0] as number] = { kind: 'renamed', path: a.path, from: r.path, state: a.state }
    drop.add(removed[0] as number)
  }
  return out.filter((_, i) => !drop.has(i))
}
