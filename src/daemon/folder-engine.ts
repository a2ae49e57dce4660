import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { debugLog } from '../core/debug-log.js'
import { ManifestView, planLocalChanges, resolvePathClaims, type LocalChange, type ManifestWrite, type StampedEntry } from '../core/folder-manifest.js'
import { caseKey, FOLDER_STATE_DIR } from '../core/folder-paths.js'
import { currentBase, fileText, newTextFileDoc } from '../core/folder-text-doc.js'
import type { FolderFileStatus } from '../core/folder-types.js'
import type { JsonValue } from '../core/json.js'
import type { UnitRecordWrite, UnitUpdate } from '../core/unit-types.js'
import { removeTempFiles } from '../folder/atomic-write.js'
import { CaptureLedger } from '../folder/capture-ledger.js'
import type { FileState } from '../folder/file-state.js'
import { FolderWatcher, type FolderChange } from '../folder/folder-watcher.js'
import { readAhead } from '../folder/read-ahead.js'
import { scanFolder } from '../folder/scan.js'
import type { FolderContext } from '../folder/incoming.js'
import { isCaseInsensitive, resolvePeerPath } from '../folder/safe-path.js'
import { FolderTrash } from '../folder/trash.js'
import { applyWrite, DEFINITION_KEY, definitionOf, entryOf, folderCollection, recordWriteOf, type FolderDefinition, type FolderHost } from './folder-host.js'
import { applyBatched } from './folder-batch.js'
import { captureFile, captureTarget, readForCapture, type FreshDocs } from './folder-capture.js'
import { commitParts } from './folder-commit-parts.js'
import { byFileId, docPrefetcher } from './folder-prefetch.js'
import { docBytes, UnitDocLru } from './unit-doc-lru.js'
import { FolderRemote } from './folder-remote.js'
import { loadLedger, readFolderState, writeFolderState } from './folder-state-file.js'

const log = debugLog('folder:engine')

/** Captured files per commit of a batch of local changes (one LevelDB batch: their units and records). */
const COMMIT_FILES = 256
/** The origin of peers' updates this engine applies itself. */
const REMOTE_ORIGIN = Symbol('kitsync:folder-remote')
/** How often blobs that no peer had are asked for again. */
const BLOB_RETRY_MS = 10_000
/** Trash entries past the retention are purged this often. */
const PURGE_EVERY_MS = 3_600_000

export interface FolderEngineOptions {
  name: string
  root: string
  definition: FolderDefinition
  /** Watcher quiet time (ms). */
  settleMs?: number
  trashRetentionMs?: number
}

/**
 * One shared folder placed on this device: the watcher's local changes become manifest writes
 * and captures into each text file's unit, committed together; peers' manifest changes and unit
 * updates become files written, moved and deleted (folder-remote.ts). Every job runs in one
 * queue per folder, so a local capture and an incoming update of one file never interleave.
 */
export class FolderEngine {
  readonly name: string
  readonly root: string
  readonly collection: string
  /** fileId -> entry, as this device holds the manifest. */
  readonly entries = new Map<string, StampedEntry>()
  /** fileId -> the manifest hash last brought to disk (or captured) here. */
  readonly handled = new Map<string, string>()
  /** fileId -> capture stamps of its document as last settled here (settleMerge). */
  readonly seen = new Map<string, Map<string, string>>()
  /** path -> the fileId whose content the file on disk there is (two records can claim a path until resolveClaims settles it). */
  readonly owner = new Map<string, string>()
  /** fileId -> the hash a binary's last writer replaced (`prev` of its record; folder-remote.ts). */
  readonly prevHash = new Map<string, string>()
  /** Binaries whose blob no connected peer had: asked for again every BLOB_RETRY_MS. */
  readonly missingBlobs = new Set<string>()
  /** path -> its conflict copy. */
  readonly conflicts = new Map<string, string>()
  /** fileIds whose incoming change is queued. */
  readonly incoming = new Set<string>()
  readonly ledger: CaptureLedger
  readonly watcher: FolderWatcher
  readonly trash: FolderTrash
  readonly ctx: FolderContext
  private readonly remote: FolderRemote
  /** Unit documents kept open between jobs, within a budget (unit-doc-lru.ts). */
  readonly docs = new UnitDocLru<Y.Doc>({ drop: (id) => this.host.units.close(this.collection, id) })
  /** Units peers updated, not brought to disk yet: one queued job writes them together. */
  private readonly pendingUnits = new Set<string>()
  /** Peers' record writes (key, value) not handled yet, in arrival order. */
  private readonly pendingRecords: [string, JsonValue | undefined][] = []
  /** Peers' updates of units being opened here, until they are (see doc); units not open load them from the store. */
  private readonly received = new Map<string, Uint8Array[]>()
  private readonly opening = new Set<string>()
  private queue: Promise<void> = Promise.resolve()
  private queued = 0
  private readonly offs: (() => void)[] = []
  private purgeTimer: NodeJS.Timeout | undefined
  private blobTimer: NodeJS.Timeout | undefined
  private saveTimer: NodeJS.Timeout | undefined
  private saving: Promise<void> = Promise.resolve()
  private stopped = false

  constructor(
    readonly host: FolderHost,
    options: FolderEngineOptions,
  ) {
    this.name = options.name
    this.root = options.root
    this.collection = folderCollection(options.name)
    const d = options.definition
    this.watcher = new FolderWatcher(options.root, {
      include: d.include,
      exclude: d.exclude,
      maxFileSize: d.maxFileSize,
      ...(options.settleMs === undefined ? {} : { settleMs: options.settleMs }),
    })
    this.ledger = new CaptureLedger(this.watcher)
    this.trash = new FolderTrash(options.root, options.trashRetentionMs === undefined ? {} : { retentionMs: options.trashRetentionMs })
    this.ctx = {
      root: options.root,
      device: host.deviceId,
      stamp: () => host.stamp(),
      observe: (s) => host.observe(s),
      states: this.ledger,
      trash: this.trash,
    }
    this.remote = new FolderRemote(this)
  }

  /**
   * Watch, scan, and reconcile the folder with the manifest; resolves once that is done, or with `background` (`folder add`) once
   * the disk is captured: the workspace's files not on disk yet are then written by a queued job, each incoming until then.
   */
  async start(options: { background?: boolean } = {}): Promise<void> {
    await mkdir(join(this.root, FOLDER_STATE_DIR), { recursive: true, mode: 0o700 })
    this.ctx.caseInsensitive = await isCaseInsensitive(join(this.root, FOLDER_STATE_DIR))
    await removeTempFiles(this.root)
    const state = await readFolderState(this.root)
    loadLedger(this.ledger, state)
    for (const [id, h] of Object.entries(state.handled)) this.handled.set(id, h)
    this.offs.push(
      await this.host.watchRecords(this.collection, (e) => {
        // The shared definition changed (here or on another device): a rescan under its globs and cap.
        if (e.key === DEFINITION_KEY) return void this.enqueue('rescan', async () => this.local(await this.watcher.reconfigure(definitionOf(e.value))))
        if (e.source !== 'remote') return
        this.incoming.add(e.key)
        // Written by one queued job with those that arrive meanwhile (folder-remote.ts records).
        if (this.pendingRecords.length === 0) void this.enqueue('record', () => this.remote.records(this.pendingRecords.splice(0)))
        this.pendingRecords.push([e.key, e.value])
      }),
      this.host.units.on('unit:update', (u) => {
        if (u.collection !== this.collection) return
        // Applied here too (a no-op when the unit layer did it): a document whose load raced the
        // update's storing would miss it otherwise.
        const open = this.docs.peek(u.unit)
        if (open !== undefined) Y.applyUpdate(open, u.update, REMOTE_ORIGIN)
        else if (this.opening.has(u.unit)) this.received.set(u.unit, [...(this.received.get(u.unit) ?? []), u.update])
        this.incoming.add(u.unit)
        if (this.pendingUnits.size === 0) void this.enqueue('unit', () => this.unitsChanged())
        this.pendingUnits.add(u.unit)
      }),
      this.host.units.on('blob:stored', (b) => {
        for (const e of this.entries.values())
          if (e.kind === 'binary' && e.hash === b.hash && e.deleted === undefined) void this.enqueue('blob', () => this.remote.binary(e.fileId))
      }),
    )
    this.watcher.on('changes', (changes) => void this.enqueue('local', () => this.local(changes)))
    this.watcher.on('error', () => void this.enqueue('rescan', async () => this.local(await this.watcher.rescan())))
    let placing: Promise<void> = Promise.resolve()
    await this.enqueue('start', async () => {
      await this.reloadEntries()
      await this.watcher.start()
      const missing = await this.reconcile()
      for (const e of missing) this.incoming.add(e.fileId)
      const placed = (): void => missing.forEach((e) => this.incoming.delete(e.fileId))
      placing = this.enqueue('place', () =>
        applyBatched(this.ctx, byFileId(missing), (id) => this.remote.apply(id, undefined), this.prefetcher()).finally(placed),
      )
    })
    this.purgeTimer = setInterval(() => void this.trash.purge().catch((err: unknown) => log(`${this.name}: trash purge failed`, err)), PURGE_EVERY_MS)
    this.purgeTimer.unref()
    this.blobTimer = setInterval(() => {
      for (const id of this.missingBlobs) void this.enqueue('blob', () => this.remote.binary(id))
    }, BLOB_RETRY_MS)
    this.blobTimer.unref()
    await this.trash.purge().catch((err: unknown) => log(`${this.name}: trash purge failed`, err))
    if (options.background !== true) await placing
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const off of this.offs) off()
    clearInterval(this.purgeTimer)
    clearInterval(this.blobTimer)
    await this.watcher.stop()
    await this.queue
    clearTimeout(this.saveTimer)
    await this.saveState()
    this.docs.clear()
  }

  /** Resolves once the watcher has reported what it saw and every queued job ran (tests, status). */
  async idle(): Promise<void> {
    for (;;) {
      await this.watcher.settled()
      const q = this.queue
      await q
      if (q === this.queue && this.queued === 0) return
    }
  }

  /** Run a job after the ones queued before it; a failing job is logged, the queue goes on. */
  enqueue(what: string, job: () => Promise<void>): Promise<void> {
    this.queued++
    const run = this.queue.then(async () => {
      try {
        if (!this.stopped || what === 'start') await job()
      } catch (err) {
        log(`${this.name}: ${what} failed`, err)
      } finally {
        this.queued--
        this.scheduleSave()
      }
    })
    this.queue = run
    return run
  }

  private scheduleSave(): void {
    if (this.saveTimer !== undefined) return
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined
      void this.saveState().catch((err: unknown) => log(`${this.name}: state not saved`, err))
    }, 200)
    this.saveTimer.unref()
  }

  /** One save at a time (the timer's and stop's): each writes what the ledger holds when it runs. */
  private saveState(): Promise<void> {
    const run = this.saving.then(() => writeFolderState(this.root, this.ledger.paths(), this.ledger, this.handled))
    this.saving = run.catch((err: unknown) => log(`${this.name}: state not saved`, err))
    return run
  }

  /** Text files whose units peers updated, brought to disk in batches (a first sync streams thousands). */
  private async unitsChanged(): Promise<void> {
    const ids = [...this.pendingUnits]
    this.pendingUnits.clear()
    const known = ids.flatMap((id) => this.entries.get(id) ?? [])
    await applyBatched(this.ctx, byFileId(known), (id) => this.remote.text(id), this.prefetcher())
    for (const id of ids) if (!this.entries.has(id)) await this.remote.text(id) // logs it, ends its 'incoming'
  }

  /** The manifest as stored (peers' changes that arrived while this folder was not running included). */
  private async reloadEntries(): Promise<void> {
    this.entries.clear()
    for (const [key, value] of Object.entries(await this.host.records(this.collection))) {
      const e = entryOf(key, value)
      if (e !== undefined) this.entries.set(key, e)
    }
  }

  /** For applyBatched: each batch's documents opened together (folder-prefetch.ts). */
  prefetcher(): (batch: readonly StampedEntry[]) => void {
    return docPrefetcher({ collection: this.collection, units: this.host.units, docs: this.docs, entries: this.entries, stopped: () => this.stopped })
  }

  /** A file's document, opened once and kept among the last used (docs). */
  async doc(fileId: string): Promise<Y.Doc> {
    const open = this.docs.get(fileId)
    if (open !== undefined) return open
    this.opening.add(fileId)
    const doc = await this.host.units.open(this.collection, fileId, newTextFileDoc).finally(() => this.opening.delete(fileId))
    for (const u of this.received.get(fileId) ?? []) Y.applyUpdate(doc, u, REMOTE_ORIGIN)
    this.received.delete(fileId)
    this.docs.set(fileId, doc, docBytes(doc))
    return doc
  }

  /** The absolute path of a folder path, checked as a peer's would be (`readNoFollow`: see safe-path.ts). */
  async abs(path: string, readNoFollow = false): Promise<string | undefined> {
    const known = this.ctx.resolved?.get(path)
    if (known !== undefined) return known
    const { checkedDirs, absent } = this.ctx
    const r = await resolvePeerPath(this.root, path, {
      caseInsensitive: this.ctx.caseInsensitive === true,
      allowFinalSymlink: false,
      readNoFollow,
      ...(checkedDirs === undefined ? {} : { checkedDirs }),
      ...(absent === undefined || readNoFollow ? {} : { absent }),
    })
    if (r.ok && !readNoFollow) this.ctx.resolved?.set(path, r.abs)
    if (r.ok) return r.abs
    log(`${this.name}: path ${JSON.stringify(path)} refused (${r.reason})`)
    return undefined
  }

  /** Store unit updates and manifest writes in one batch; this device's entries follow its own writes. */
  async commit(updates: UnitUpdate[], writes: ManifestWrite[], override: Map<string, Record<string, JsonValue>> = new Map()): Promise<void> {
    const pathAt = (): string => `${this.host.stamp()} ${this.host.deviceId}`
    const records: UnitRecordWrite[] = []
    for (const w of writes) {
      const r = recordWriteOf(w, pathAt)
      const extra = override.get(w.fileId)
      const fields = { ...(r.fields ?? {}), ...(extra ?? {}) }
      records.push({ key: r.key, fields })
      const after = applyWrite(this.entries.get(w.fileId), w, fields)
      if (after !== undefined) this.entries.set(w.fileId, after)
      if (after !== undefined && after.deleted === undefined && typeof fields.hash === 'string') this.handled.set(w.fileId, fields.hash)
    }
    for (const part of commitParts(updates, records)) await this.host.units.commit(this.collection, part.updates, part.records)
  }

  /**
   * A batch of local changes from the watcher: manifest writes and captures, committed together
   * COMMIT_FILES captured files at a time (one LevelDB batch each), the files read ahead.
   */
  async local(changes: FolderChange[]): Promise<void> {
    if (changes.length === 0) return
    const view = new ManifestView(this.entries.values())
    const writes = planLocalChanges(view, changes as LocalChange[], () => this.host.stamp())
    // Directories checked once per batch (safe-path.ts), unless a batch around this one checks them.
    const ownDirs = this.ctx.checkedDirs === undefined
    if (ownDirs) this.ctx.checkedDirs = new Set()
    try {
      const targets = writes.flatMap((w) => captureTarget(w, this.entries.get(w.fileId)) ?? [])
      const nextRead = readAhead(targets, (path) => readForCapture(this, path))
      const fresh: FreshDocs = new Map()
      let updates: UnitUpdate[] = []
      let override = new Map<string, Record<string, JsonValue>>()
      let from = 0
      const behind: string[] = []
      for (let i = 0; i < writes.length; i++) {
        const w = writes[i] as ManifestWrite
        const before = this.entries.get(w.fileId)
        const fields = w.op === 'create' ? w.entry : w.fields
        const path = typeof fields.path === 'string' ? fields.path : before?.path
        if (path === undefined) continue
        if (fields.deleted !== undefined && fields.deleted !== null) {
          this.ledger.record(path, undefined)
          this.owner.delete(path)
          continue
        }
        if (before !== undefined && typeof fields.path === 'string' && fields.path !== before.path) {
          // A rename: the base of what the disk held moves with the file.
          const base = this.ledger.base(before.path)
          const state = this.ledger.captured(before.path)
          this.ledger.record(before.path, undefined)
          this.owner.delete(before.path)
          this.owner.set(path, w.fileId)
          if (state !== undefined) this.ledger.record(path, state, base)
        }
        if (captureTarget(w, before) === undefined) continue
        const c = await captureFile(this, w.fileId, path, await nextRead(), fresh, w.op === 'create')
        if (c === undefined) continue
        if (c.update !== undefined) updates.push(c.update)
        if (c.fields !== undefined) override.set(w.fileId, c.fields)
        if (c.behind === true) behind.push(w.fileId)
        if (override.size >= COMMIT_FILES) {
          await this.commit(updates, writes.slice(from, i + 1), override)
          updates = []
          override = new Map()
          from = i + 1
        }
      }
      await this.commit(updates, writes.slice(from), override)
      for (const id of behind) await this.remote.text(id)
    } finally {
      if (ownDirs) this.ctx.checkedDirs = undefined
    }
    const at = Date.now()
    for (const c of changes) {
      if (c.kind === 'excluded') continue
      this.host.emit('folder:change', { folder: this.name, path: c.path, op: c.kind, ...(c.kind === 'renamed' ? { from: c.from } : {}), source: 'local', at })
    }
    await this.resolveClaims(changes.map((c) => c.path))
  }

  /** Two live records at one path (created on two devices offline): settled alike on every device (resolvePathClaims). */
  async resolveClaims(paths?: Iterable<string>): Promise<void> {
    // Only when one of `paths` has two live claims: a pass over the whole manifest per record
    // received made the first sync of 10,000 files quadratic.
    if (paths !== undefined) {
      const wanted = new Set(paths)
      const claimed = new Set<string>()
      let clash = false
      for (const e of this.entries.values()) {
        if (e.deleted !== undefined || e.from !== undefined || !wanted.has(e.path)) continue
        if (claimed.has(e.path)) {
          clash = true
          break
        }
        claimed.add(e.path)
      }
      if (!clash) return
    }
    const writes = resolvePathClaims(this.entries.values(), () => this.host.stamp())
    if (writes.length === 0) return
    const moved = writes.map((w) => ({ w, before: this.entries.get(w.fileId) }))
    await this.commit([], writes)
    for (const { w, before } of moved) if (before !== undefined) await this.remote.apply(w.fileId, before)
    // The record that kept each contested path now gets it on disk.
    const contested = new Set(moved.map((m) => m.before?.path))
    for (const e of [...this.entries.values()])
      if (e.deleted === undefined && e.from === undefined && contested.has(e.path)) await this.remote.apply(e.fileId, undefined)
  }

  /** Whether the file on disk at `path` is another record's content (its claim not settled yet). */
  ownedByOther(path: string, fileId: string): boolean {
    const o = this.owner.get(path)
    return o !== undefined && o !== fileId && this.ledger.captured(path) !== undefined
  }

  /**
   * At start: the disk against the manifest and what was captured before. A file changed while
   * the peer was down is a local change; a file gone that was captured is a delete; the files
   * the manifest holds that are not here are returned (start writes them); a file found at a path whose record holds other
   * content (`folder add` over a non-empty folder) is taken as this device's edit, and the
   * workspace's version is kept beside it as a conflict copy: merged, never overwritten blindly.
   */
  private async reconcile(): Promise<StampedEntry[]> {
    const view = new ManifestView(this.entries.values())
    const changes: FolderChange[] = []
    const disk = this.watcher.snapshot()
    for (const [path, state] of disk) {
      if (state.hash === undefined) continue
      const e = view.at(path)
      const cap = this.ledger.captured(path)
      if (cap !== undefined && cap.hash === state.hash && cap.executable === state.executable) {
        if (e === undefined && view.deletedAt(path) !== undefined) await this.remote.apply(view.deletedAt(path)?.fileId as string, undefined, path)
        continue
      }
      if (e === undefined || cap !== undefined) {
        changes.push({ kind: e === undefined ? 'added' : 'modified', path, state })
        continue
      }
      if (e !== undefined) this.owner.set(path, e.fileId)
      if (e.hash === state.hash) {
        const doc = e.kind === 'text' ? await this.doc(e.fileId) : undefined
        await this.ledger.hold(path, async () => (doc === undefined ? { state } : { state, base: currentBase(doc) }))
        this.handled.set(e.fileId, e.hash)
        continue
      }
      if (await this.remote.placementClash(e, path, state)) changes.push({ kind: 'modified', path, state })
    }
    await this.local(changes)
    for (const path of this.ledger.paths())
      if (!disk.has(path) && view.at(path) !== undefined) changes.push({ kind: 'removed', path, previous: this.ledger.captured(path) as FileState })
    await this.local(changes.filter((c) => c.kind === 'removed'))
    return [...this.entries.values()].filter(
      (e) => e.deleted === undefined && e.from === undefined && !(this.handled.get(e.fileId) === e.hash && (e.kind === 'dir' || disk.has(e.path))),
    )
  }

  /** Per file: synced, local changes, incoming, conflict, local only, excluded. */
  async status(): Promise<FolderFileStatus[]> {
    await this.idle()
    const out: FolderFileStatus[] = []
    const selection = this.watcher.selectionNow()
    const disk = this.watcher.snapshot()
    const live = new Map<string, StampedEntry>()
    for (const e of this.entries.values()) if (e.deleted === undefined && e.from === undefined) live.set(e.path, e)
    const conflictCopies = new Set(this.conflicts.values())
    for (const e of live.values()) {
      const copy = this.conflicts.get(e.path)
      const base = { path: e.path, kind: e.kind, size: e.size }
      if (copy !== undefined) out.push({ ...base, state: 'conflict', conflictCopy: copy })
      else if (conflictCopies.has(e.path) || /\.conflict-[A-Za-z0-9]+-\d{8}T\d{6}Z/.test(e.path)) out.push({ ...base, state: 'conflict' })
      else if (e.kind !== 'dir' && selection?.path(e.path).included === false) out.push({ ...base, state: 'excluded' })
      else if (this.incoming.has(e.fileId)) out.push({ ...base, state: 'incoming' })
      else if (e.kind === 'dir') out.push({ ...base, state: 'synced' })
      else {
        const seen = disk.get(e.path)
        const cap = this.ledger.captured(e.path)
        if (seen === undefined || cap === undefined) out.push({ ...base, state: 'incoming' })
        else if (seen.hash !== cap.hash || seen.executable !== cap.executable) out.push({ ...base, state: 'local changes' })
        else out.push({ ...base, state: 'synced' })
      }
    }
    const taken = new Set([...live.keys()].map(caseKey))
    const { skipped: left } = selection === undefined ? { skipped: [] } : await scanFolder(this.root, selection, disk)
    for (const skipped of left)
      if (!taken.has(caseKey(skipped.path)) && !skipped.path.startsWith(`${FOLDER_STATE_DIR}/`) && skipped.path !== FOLDER_STATE_DIR)
        out.push({ path: skipped.path, kind: skipped.dir === true ? 'dir' : 'text', state: 'local only', size: 0 })
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  }

  /** Files, bytes of the live files in the manifest. */
  totals(): { files: number; bytes: number } {
    let files = 0
    let bytes = 0
    for (const e of this.entries.values()) {
      if (e.deleted !== undefined || e.from !== undefined || e.kind === 'dir') continue
      files++
      bytes += e.size
    }
    return { files, bytes }
  }

  /** Whether the text of a document is what the disk holds (tests). */
  async docText(fileId: string): Promise<string> {
    return fileText(await this.doc(fileId))
  }
}
