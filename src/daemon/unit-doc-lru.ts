import type * as Y from 'yjs'
import { TEXT_NAME } from '../core/folder-text-doc.js'

/** Unit documents a folder keeps open at most (see UnitDocLru). */
export const LRU_MAX_DOCS = 256
/** Bytes of open unit documents (their state encoded, as estimated by the caller) a folder keeps at most. */
export const LRU_MAX_BYTES = 8 * 1024 * 1024

export interface UnitDocLruOptions {
  maxDocs?: number
  maxBytes?: number
  /** A document let go: its unit is closed (its state is in the store; the next use loads it again). */
  drop(key: string): void
}

interface Entry<T> {
  value: T
  bytes: number
  pins: number
}

/**
 * The open unit documents of a folder (daemon/folder-engine.ts), least recently used first,
 * within a count and a byte budget. A document is opened from the store, and a local capture
 * into it is committed by its job in a part of at most COMMIT_PART_UNITS (128) units, fewer
 * than the documents kept: dropping one loses nothing, the next use opens it again from the
 * store (WorkspaceUnits.open) with what was committed and received meanwhile. (A file larger
 * than the byte budget can be dropped before its job commits its capture; the job still holds
 * the update and commits it.) A document pinned (in use across awaits) is never dropped; the
 * budget is met again once it is unpinned. The one just added is kept even when it alone is
 * over the byte budget (it is in use).
 *
 * Why a byte budget besides the count: files of up to the size cap (1 MiB) make 256 documents
 * a quarter of a gigabyte.
 */
export class UnitDocLru<T> {
  private readonly entries = new Map<string, Entry<T>>()
  private readonly maxDocs: number
  private readonly maxBytes: number
  private total = 0
  /** Documents dropped so far (tests, status). */
  drops = 0

  constructor(private readonly options: UnitDocLruOptions) {
    this.maxDocs = options.maxDocs ?? LRU_MAX_DOCS
    this.maxBytes = options.maxBytes ?? LRU_MAX_BYTES
  }

  /** The document of `key`, now the most recently used. */
  get(key: string): T | undefined {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    this.entries.delete(key)
    this.entries.set(key, e)
    return e.value
  }

  /** The document of `key`, its place unchanged. */
  peek(key: string): T | undefined {
    return this.entries.get(key)?.value
  }

  /** Keep a document opened from the store; older ones past the budget are dropped. */
  set(key: string, value: T, bytes: number): void {
    this.remove(key)
    this.entries.set(key, { value, bytes, pins: 0 })
    this.total += bytes
    this.trim(key)
  }

  /** A document grew by `bytes` (a capture or a peer's update applied to it). */
  grow(key: string, bytes: number): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    e.bytes += bytes
    this.total += bytes
    this.trim(key)
  }

  /** Keep `key` open until the returned function is called (once). */
  pin(key: string): () => void {
    const e = this.entries.get(key)
    if (e === undefined) return () => undefined
    e.pins++
    let done = false
    return () => {
      if (done) return
      done = true
      e.pins--
      if (e.pins === 0) this.trim()
    }
  }

  /** Forget a document without dropping its unit (the caller closes it). */
  remove(key: string): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    this.entries.delete(key)
    this.total -= e.bytes
  }

  keys(): string[] {
    return [...this.entries.keys()]
  }

  /** Drop every document (pinned ones too: the owner stops). */
  clear(): void {
    for (const key of this.keys()) {
      this.remove(key)
      this.options.drop(key)
    }
  }

  get size(): number {
    return this.entries.size
  }

  get bytes(): number {
    return this.total
  }

  /** Drop the least recently used unpinned documents (never `keep`) while over a budget. */
  private trim(keep?: string): void {
    if (this.entries.size <= this.maxDocs && this.total <= this.maxBytes) return
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.maxDocs && this.total <= this.maxBytes) return
      if (key === keep || e.pins > 0) continue
      this.entries.delete(key)
      this.total -= e.bytes
      this.drops++
      this.options.drop(key)
    }
  }
}

/** What a text file's document counts for in the byte budget: its text's length (O(1) in Yjs; deleted text kept is not counted). */
export const docBytes = (doc: Y.Doc): number => doc.getText(TEXT_NAME).length
