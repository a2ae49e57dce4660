import * as Y from 'yjs'
import { flatKey, HEADER, type SlotSource } from './record-slots.js'
import type { ConflictVersion } from './workspace-types.js'

/**
 * The conflicts a collection recorded for the `ask` policy: a Y.Map named `conflicts` in the
 * collection's document, synced with its records, so every device lists the same open conflicts.
 */

export const CONFLICTS_MAP = 'conflicts'

export interface OpenConflict {
  id: string
  key: string
  field?: string
  versions: ConflictVersion[]
  at: number
  detectedBy: string
}

/**
 * A recorded conflict is settled once its versions no longer stand side by side in the
 * record (a later write replaced them). Two devices may record the same conflict at once
 * and one entry can outlive the resolve; such entries are settled, not open.
 * `fields` are the record's slots by field (from the collection's index).
 */
export function conflictSettled(c: OpenConflict, fields: Iterable<[string, Iterable<string>]>, slots: SlotSource): boolean {
  const stamps = new Set<string>()
  for (const [f, fieldSlots] of fields) {
    if (c.field !== undefined && f !== c.field && f !== HEADER) continue
    if (c.field === undefined && f !== HEADER) continue
    for (const slot of fieldSlots) {
      const s = slots.get(flatKey(c.key, f, slot))
      if (s !== undefined) stamps.add(s.t)
    }
  }
  return c.versions.filter((v) => stamps.has(v.hlc)).length < 2
}

export class ConflictMap {
  readonly map: Y.Map<OpenConflict>
  private readonly doc: Y.Doc
  private readonly isSettled: (c: OpenConflict) => boolean

  /** `isSettled` tells a conflict whose versions a later write replaced (see conflictSettled). */
  constructor(doc: Y.Doc, isSettled: (c: OpenConflict) => boolean) {
    this.doc = doc
    this.map = doc.getMap<OpenConflict>(CONFLICTS_MAP)
    this.isSettled = isSettled
  }

  /** Subscribe to conflicts that another device recorded (`ask`), as they arrive. */
  onRecorded(listener: (conflict: OpenConflict) => void): () => void {
    const observer = (event: Y.YMapEvent<OpenConflict>, tx: Y.Transaction): void => {
      if (tx.local) return
      let settled = false
      for (const id of event.keysChanged) {
        const c = this.map.get(id)
        if (c === undefined) continue
        if (this.isSettled(c)) settled = true
        else listener(c)
      }
      // An entry that arrived after its conflict was resolved elsewhere: clean it up (after this transaction).
      if (settled) queueMicrotask(() => this.dropSettled('kitsync:settle'))
    }
    this.map.observe(observer)
    return () => this.map.unobserve(observer)
  }

  /** Conflicts recorded and not settled yet, oldest first. */
  open(): OpenConflict[] {
    return [...this.map.values()].filter((c) => !this.isSettled(c)).sort((a, b) => a.at - b.at || a.id.localeCompare(b.id))
  }

  /** Forget recorded conflicts that are settled. */
  dropSettled(origin: unknown): void {
    const settled = [...this.map.values()].filter((c) => this.isSettled(c))
    if (settled.length > 0) this.doc.transact(() => settled.forEach((c) => this.map.delete(c.id)), origin)
  }

  record(conflict: OpenConflict, origin: unknown): void {
    if (this.map.has(conflict.id)) return
    this.doc.transact(() => this.map.set(conflict.id, conflict), origin)
  }

  clear(id: string, origin: unknown): void {
    if (this.map.has(id)) this.doc.transact(() => this.map.delete(id), origin)
  }
}
