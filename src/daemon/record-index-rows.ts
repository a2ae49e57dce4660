import type { RecordChange } from '../core/record-changes.js'
import type { RecordCollection } from '../core/record-collection.js'
import type { BatchOp } from '../store/doc-layout.js'
import { rowDel, rowPut } from '../store/record-rows.js'
import type { DerivedRows, RowCollector } from './derived-rows.js'

/**
 * The index of a collection's records (`r!NAME!KEY`, store/record-rows.ts): for each changed
 * record its value as the collection reads it now and its greatest stamp, or a delete when
 * there is no record. Reads go through RecordCollection's public API only, whatever the
 * layout of its slots. For appends, the changed keys are noted and each gets one row when the
 * batch is put together, however many of the batch's transactions wrote it.
 */
export const recordIndexRows: DerivedRows = {
  derive(name: string, collection: RecordCollection, changes: readonly RecordChange[]): BatchOp[] {
    const ops: BatchOp[] = []
    for (const change of changes) ops.push(indexRow(name, collection, change.key))
    return ops
  },

  collector(name: string, collection: RecordCollection): RowCollector {
    let keys = new Set<string>()
    return {
      add(changes: readonly RecordChange[]): void {
        for (const change of changes) keys.add(change.key)
      },
      take(): BatchOp[] {
        const ops: BatchOp[] = []
        for (const key of keys) ops.push(indexRow(name, collection, key))
        keys = new Set()
        return ops
      },
    }
  },
}

function indexRow(name: string, collection: RecordCollection, key: string): BatchOp {
  const v = collection.get(key)
  return v === undefined ? rowDel(name, key) : rowPut(name, key, { v, t: collection.lastWrite(key) ?? '' })
}
