import type { RecordChange } from '../core/record-collection.js'
import type { ChangeEvent } from '../core/workspace-types.js'
import { LOCAL_ORIGIN } from './collection-registry.js'

/** Where a workspace's 'change' events go (its TypedEmitter). */
export interface ChangeSink {
  listenerCount(event: 'change'): number
  emit(event: 'change', payload: ChangeEvent): void
}

/** One 'change' event per changed record of one transaction, read only when someone listens. */
export function emitRecordChanges(sink: ChangeSink, collection: string, changes: RecordChange[]): void {
  if (sink.listenerCount('change') === 0) return
  const at = Date.now()
  const source = changes[0]?.origin === LOCAL_ORIGIN ? 'local' : 'remote'
  for (const { key, value } of changes) {
    const event: ChangeEvent = value === undefined ? { collection, key, op: 'del', source, at } : { collection, key, op: 'set', value, source, at }
    sink.emit('change', event)
  }
}
