import { lstat, mkdir, readdir, readFile, rename, rmdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import * as Y from 'yjs'
import { conflictPath, isLater, type VersionSide } from '../core/folder-conflicts.js'
import { reviveAfterDelete, type StampedEntry } from '../core/folder-manifest.js'
import { captureStamps, fileText } from '../core/folder-text-doc.js'
import { debugLog } from '../core/debug-log.js'
import type { JsonValue } from '../core/json.js'
import { removeFileChecked } from '../folder/atomic-write.js'
import { sha256 as sha256Hex, type FileState } from '../folder/file-state.js'
import type { FolderChange } from '../folder/folder-watcher.js'
import { applyMergedText, applyRemoteBinary, writeBackup } from '../folder/incoming.js'
import type * as YDoc from 'yjs'
import type { ManifestWrite } from '../core/folder-manifest.js'
import type { UnitUpdate } from '../core/unit-types.js'
import type { CaptureLedger } from '../folder/capture-ledger.js'
import type { FolderContext } from '../folder/incoming.js'
import type { FolderTrash } from '../folder/trash.js'
import type { FolderConflictEvent } from '../core/folder-types.js'
import { caseKey } from '../core/folder-paths.js'
import { applyBatched } from './folder-batch.js'
import { byFileId } from './folder-prefetch.js'
import { entryOf, type FolderHost } from './folder-host.js'
import { keepReplacedText, keepText } from './folder-version-text.js'

const log = debugLog('folder:remote')

/** What the remote side needs of its folder's engine (folder-engine.ts). */
export interface FolderEngine {
  readonly name: string
  readonly collection: string
  readonly host: FolderHost
  readonly entries: Map<string, StampedEntry>
  readonly handled: Map<string, string>
  readonly seen: Map<string, Map<string, string>>
  readonly conflicts: Map<string, string>
  readonly incoming: Set<string>
  readonly owner: Map<string, string>
  /** fileId -> the hash a binary's last writer replaced (`prev` of its record). */
  readonly prevHash: Map<string, string>
  /** Binaries whose blob no connected peer had. */
  readonly missingBlobs: Set<string>
  readonly ledger: CaptureLedger
  readonly trash: FolderTrash
  readonly ctx: FolderContext
  abs(path: string): Promise<string | undefined>
  doc(fileId: string): Promise<YDoc.Doc>
  commit(updates: UnitUpdate[], writes: ManifestWrite[]): Promise<void>
  resolveClaims(paths?: Iterable<string>): Promise<void>
  local(changes: FolderChange[]): Promise<void>
  ownedByOther(path: string, fileId: string): boolean
  /** For applyBatched: each batch's documents opened together (folder-prefetch.ts). */
  prefetcher(): (batch: readonly StampedEntry[]) => void
}

/**
 * Peers' changes of one placed folder brought to its disk: a manifest record changed (a file
 * created, renamed, deleted, a directory made) or a text file's unit updated (merged, the
 * JSON/YAML rule, written atomically over what was captured only). Every path a peer names is
 * checked (safe-path.ts) before anything touches the disk. Runs inside the engine's queue.
 */
export class FolderRemote {
  constructor(private readonly engine: FolderEngine) {}

  private get host(): FolderHost {
    return this.engine.host
  }

  /** A peer's write of a manifest record. */
  async record(fileId: string, value: JsonValue | undefined): Promise<void> {
    const prev = this.engine.entries.get(fileId)
    const next = value === undefined ? undefined : entryOf(fileId, value)
    const prev2 = typeof value === 'object' && value !== null && !Array.isArray(value) ? value.prev : undefined
    if (typeof prev2 === 'string') this.engine.prevHash.set(fileId, prev2)
    else this.engine.prevHash.delete(fileId)
    if (next === undefined) this.engine.entries.delete(fileId)
    else this.engine.entries.set(fileId, next)
    try {
      await this.apply(fileId, prev)
      await this.engine.resolveClaims(next === undefined ? [] : [next.path])
    } finally {
      this.engine.incoming.delete(fileId)
    }
  }

  /**
   * Peers' record writes queued together, in arrival order (a first sync streams thousands):
   * files and directories new here (no entry, live, not binary, one write of their key in the
   * batch) are brought to disk together (folder-batch.ts: concurrent writes, directory fsyncs
   * once per batch); every other write goes one at a time, first. When a path of those others
   * is, or is above or under, the path of a new one, the whole batch goes one at a time.
   */
  async records(batch: readonly (readonly [string, JsonValue | undefined])[]): Promise<void> {
    const count = new Map<string, number>()
    for (const [key] of batch) count.set(key, (count.get(key) ?? 0) + 1)
    const fresh: StampedEntry[] = []
    const others: (readonly [string, JsonValue | undefined])[] = []
    for (const item of batch) {
      const [key, value] = item
      const next = value === undefined ? undefined : entryOf(key, value)
      const isNew = next !== undefined && next.deleted === undefined && next.from === undefined && next.kind !== 'binary'
      if (isNew && count.get(key) === 1 && !this.engine.entries.has(key)) fresh.push(next)
      else others.push(item)
    }
    const touched: string[] = []
    for (const [key, value] of others) {
      const prev = this.engine.entries.get(key)
      const next = value === undefined ? undefined : entryOf(key, value)
      for (const e of [prev, next]) if (e !== undefined) touched.push(caseKey(e.path))
    }
    const near = (a: string, b: string): boolean => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`)
    if (fresh.length < 2 || fresh.some((e) => touched.some((t) => near(caseKey(e.path), t)))) {
      for (const [key, value] of batch) await this.record(key, value)
      return
    }
    for (const [key, value] of others) await this.record(key, value)
    for (const e of fresh) {
      this.engine.prevHash.delete(e.fileId)
      this.engine.entries.set(e.fileId, e)
    }
    try {
      await applyBatched(this.engine.ctx, byFileId(fresh), (id) => this.apply(id, undefined), this.engine.prefetcher())
      await this.engine.resolveClaims(fresh.map((e) => e.path))
    } finally {
      for (const e of fresh) this.engine.incoming.delete(e.fileId)
    }
  }

  /**
   * Bring one file's disk state in line with its entry. `prev`: the entry before the change
   * (where the file is on this disk); `here`: the path it is at, when known otherwise.
   */
  async apply(fileId: string, prev: StampedEntry | undefined, here?: string): Promise<void> {
    const e = this.engine.entries.get(fileId)
    const at = here ?? (prev !== undefined && prev.deleted === undefined && prev.from === undefined ? prev.path : undefined)
    // What is on disk at `at` is this record's only if no other record's content is there.
    const captured = at === undefined || (this.engine.owner.get(at) ?? fileId) !== fileId ? undefined : this.engine.ledger.captured(at)
    if (e === undefined || e.deleted !== undefined || e.from !== undefined) {
      if (at !== undefined && captured !== undefined) await this.removeHere(fileId, e, at, captured)
      else if (at !== undefined && prev?.kind === 'dir') await this.removeDir(at)
      return
    }
    if (at !== undefined && at !== e.path && (captured !== undefined || prev?.kind === 'dir')) await this.moveHere(at, e.path)
    if (e.kind === 'dir') {
      const abs = await this.engine.abs(e.path)
      if (abs !== undefined) await mkdir(abs, { recursive: true })
      this.engine.handled.set(fileId, '')
      return
    }
    if (e.kind === 'text') await this.text(fileId)
    else await this.binary(fileId)
  }

  /** A peer's delete: to the trash, if the file is still what was captured; an edit made here after the version the delete saw wins. */
  private async removeHere(fileId: string, e: StampedEntry | undefined, path: string, captured: FileState): Promise<void> {
    if (e !== undefined) {
      const revive = reviveAfterDelete(e, { size: captured.size, hash: captured.hash, executable: captured.executable, binary: captured.binary })
      if (revive !== undefined) {
        await this.engine.commit([], [revive])
        return
      }
    }
    const abs = await this.engine.abs(path)
    if (abs === undefined) return
    const r = await this.engine.ledger.hold(path, async () => {
      const x = await removeFileChecked(abs, captured, { trash: this.engine.trash, path })
      return { status: x.status, state: x.status === 'removed' ? undefined : captured }
    })
    // Changed under us: the watcher reports the edit, which brings the file back (planLocalChanges).
    if (r.status !== 'removed') return
    this.engine.owner.delete(path)
    this.engine.handled.delete(fileId)
    this.changed(path, 'removed')
  }

  private async removeDir(path: string): Promise<void> {
    const abs = await this.engine.abs(path)
    if (abs === undefined) return
    const left = await readdir(abs).catch(() => undefined)
    if (left === undefined || left.length > 0) return
    await rmdir(abs).catch((err: unknown) => log(`${path}: not removed`, err))
    this.changed(path, 'dir-removed')
  }

  /** A peer's rename: one rename(2), the captured state and base moving with the file; never over something at the new path. */
  private async moveHere(from: string, to: string): Promise<void> {
    const fromAbs = await this.engine.abs(from)
    const toAbs = await this.engine.abs(to)
    if (fromAbs === undefined || toAbs === undefined) return
    if ((await lstat(toAbs).catch(() => undefined)) !== undefined) {
      log(`${this.engine.name}: ${from} not moved to ${to}: something is there`)
      return
    }
    const ledger = this.engine.ledger
    const state = ledger.captured(from)
    const base = ledger.base(from)
    await mkdir(dirname(toAbs), { recursive: true })
    await ledger.hold(to, () =>
      ledger
        .hold(from, async () => {
          await rename(fromAbs, toAbs)
          return { state: undefined }
        })
        .then(() => (base === undefined ? { state } : { state, base })),
    )
    const id = this.engine.owner.get(from)
    this.engine.owner.delete(from)
    if (id !== undefined) this.engine.owner.set(to, id)
    this.changed(to, 'renamed', from)
  }

  /** A text file's document changed (a peer's update) or its record did: merge, settle, write. */
  async text(fileId: string): Promise<void> {
    try {
      const e = this.engine.entries.get(fileId)
      if (e === undefined || e.deleted !== undefined || e.from !== undefined || e.kind !== 'text') return log(`${fileId}: no live text record yet`)
      const abs = await this.engine.abs(e.path)
      if (abs === undefined || this.engine.ownedByOther(e.path, fileId)) return
      const doc = await this.engine.doc(fileId)
      const captured = this.engine.ledger.captured(e.path)
      if (captured === undefined && fileText(doc) === '' && e.size > 0) return log(`${e.path}: its content has not arrived yet`)
      const sv = Y.encodeStateVector(doc)
      const seen = this.engine.seen.get(fileId) ?? new Map<string, string>()
      await keepReplacedText(this.engine.host.units, this.engine.ledger, doc, e.path) // file history: the text replaced
      const out = await applyMergedText(this.engine.ctx, e.path, doc, seen)
      if (captured !== undefined && out.write.result.status === 'written') await keepText(this.engine.host.units, fileText(doc), e.hash)
      this.engine.seen.set(fileId, captureStamps(doc))
      this.engine.owner.set(e.path, fileId)
      this.engine.handled.set(fileId, e.hash)
      if (out.backup !== undefined && out.merge.kind === 'conflict') this.conflict(e, out.backup, 'structured', out.merge.winner)
      if (out.write.result.status === 'written') this.changed(e.path, captured === undefined ? 'added' : 'modified')
      // This device's own changes of the document (a local save merged first, a winner's repair) sync too.
      const mine = Y.decodeStateVector(Y.encodeStateVector(doc)).get(doc.clientID) ?? 0
      if (mine > (Y.decodeStateVector(sv).get(doc.clientID) ?? 0)) {
        const now = this.engine.ledger.captured(e.path)
        const fields: Record<string, JsonValue> = now?.hash === undefined ? {} : { size: now.size, hash: now.hash }
        await this.engine.commit([{ unit: fileId, update: Y.encodeStateAsUpdate(doc, sv) }], [{ op: 'update', fileId, fields }])
      }
      // Both devices of the conflict write the same copy (same name and content): each shares
      // it, and the two records are settled as one file (resolvePathClaims). Unshared, it was
      // in no manifest: on disk, never synced, missing from status.
      if (out.backup !== undefined && out.merge.kind === 'conflict') await this.shareCopy(out.backup)
    } finally {
      this.engine.incoming.delete(fileId)
    }
  }

  /** A binary's new version: newest wins, the other kept beside it. */
  async binary(fileId: string): Promise<void> {
    const e = this.engine.entries.get(fileId)
    if (e === undefined || e.deleted !== undefined || e.kind !== 'binary') return
    if (this.engine.ledger.captured(e.path)?.hash === e.hash) {
      this.engine.handled.set(fileId, e.hash)
      return
    }
    const bytes = await this.host.units.getBlob(e.hash)
    if (bytes === undefined) {
      // No connected peer has it now: asked again later (FolderEngine's retry) or when one arrives ('blob:stored').
      this.engine.missingBlobs.add(fileId)
      return
    }
    this.engine.missingBlobs.delete(fileId)
    const had = this.engine.ledger.captured(e.path)
    if (this.engine.ownedByOther(e.path, fileId)) return
    // A version captured here that the writer did not replace (its `prev` is another): two
    // concurrent versions, the record's is the newer; ours is kept beside it, visibly.
    const prev = this.engine.prevHash.get(fileId)
    const abs = await this.engine.abs(e.path)
    log(`${e.path}: binary ${e.hash.slice(0, 8)} over ${had?.hash?.slice(0, 8) ?? 'nothing'} (the writer replaced ${prev?.slice(0, 8) ?? '?'})`)
    if (had?.hash !== undefined && prev !== undefined && prev !== had.hash && abs !== undefined) {
      const ours = await readFile(abs).catch(() => undefined)
      if (ours !== undefined && sha256Hex(ours) === had.hash) {
        const backup = await writeBackup(this.engine.ctx, conflictPath(e.path, { device: this.host.deviceId, stamp: this.host.stamp() }), ours)
        this.conflict(e, backup, 'binary', 'remote')
        await this.shareCopy(backup)
      }
    }
    const r = await applyRemoteBinary(this.engine.ctx, e.path, bytes, e.pathSide, e.x)
    if (r.status === 'written') this.engine.owner.set(e.path, fileId)
    this.engine.handled.set(fileId, e.hash)
    if (r.backup !== undefined) this.conflict(e, r.backup, 'binary', r.status === 'written' ? 'remote' : 'local')
    if (r.status === 'written') this.changed(e.path, had === undefined ? 'added' : 'modified')
  }

  /**
   * At placement (or after a restart without state) a file whose record holds other content:
   * the workspace's version is kept beside it as a conflict copy, and true is returned: the
   * caller captures the file as this device's edit. False when they hold the same text.
   */
  async placementClash(e: StampedEntry, path: string, state: FileState): Promise<boolean> {
    let theirs: Uint8Array | undefined
    if (e.kind === 'text') {
      const text = fileText(await this.engine.doc(e.fileId))
      const abs = await this.engine.abs(path)
      const mine = abs === undefined ? undefined : await readFile(abs, 'utf8').catch(() => undefined)
      if (mine === text) {
        await this.engine.ledger.hold(path, async () => ({ state }))
        return false
      }
      theirs = new TextEncoder().encode(text)
    } else if (e.kind === 'binary') theirs = await this.host.units.getBlob(e.hash)
    if (theirs === undefined || theirs.byteLength === 0) return true
    const side: VersionSide = e.pathSide.stamp === '' ? { device: 'workspace', stamp: this.host.stamp() } : e.pathSide
    const backup = await writeBackup(this.engine.ctx, conflictPath(path, side), theirs)
    this.conflict(e, backup, 'placement', 'local')
    await this.shareCopy(backup)
    return true
  }

  /** A conflict copy this device wrote is shared like a file the user made. */
  private async shareCopy(path: string): Promise<void> {
    const state = this.engine.ledger.captured(path)
    if (state !== undefined) await this.engine.local([{ kind: 'added', path, state }])
  }

  private conflict(e: StampedEntry, backup: string, reason: FolderConflictEvent['reason'], winner: 'local' | 'remote'): void {
    const at = Date.now()
    this.engine.conflicts.set(e.path, backup)
    this.host.emit('folder:conflict', { folder: this.engine.name, path: e.path, backup, reason, winner, at })
    const self = { device: this.host.deviceId, hlc: this.host.stamp() }
    const other = { device: e.pathSide.device, hlc: e.pathSide.stamp }
    const versions = isLater({ device: self.device, stamp: self.hlc }, { device: other.device, stamp: other.hlc }) ? [self, other] : [other, self]
    this.host.emit('sync:conflict', {
      id: `${this.engine.collection}:${e.fileId}:${at}`,
      collection: this.engine.collection,
      key: e.fileId,
      policy: 'latest_wins',
      resolution: 'latest',
      versions,
      at,
    })
  }

  private changed(path: string, op: 'added' | 'modified' | 'removed' | 'renamed' | 'dir-removed', from?: string): void {
    this.host.emit('folder:change', { folder: this.engine.name, path, op, ...(from === undefined ? {} : { from }), source: 'remote', at: Date.now() })
  }
}
