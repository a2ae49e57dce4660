import type { RecordChange } from '../core/record-changes.js'
import type { RecordCollection } from '../core/record-collection.js'
import type { BatchOp } from '../store/doc-layout.js'
import { rowDel, rowPut } from '../store/record-rows.js'
import type { DerivedRows } from './derived-rows.js'

/**
 * The index of a collection's records (`r!NAME!KEY`, store/record-rows.ts): for each changed
 * record its value as the collection reads it now and its greatest stamp, or a delete when
 * there is no record. Reads go through RecordCollection's public API only, whatever the
 * layout of its slots.
 */
export const recordIndexRows: DerivedRows = {
  derive(name: string, collection: RecordCollection, changes: readonly RecordChange[]): BatchOp[] {
    const ops: BatchOp[] = []
    for (const change of changes) {
      const v = collection.get(change.key)
      ops.push(v === undefined ? rowDel(name, change.key) : rowPut(name, change.key, { v, t: collection.lastWrite(change.key) ?? '' }))
    }
    return ops
  },
}
