import type { EffectiveSettings } from '../core/kinds.js'
import { assertJsonValue, type JsonValue } from '../core/json.js'
import { assertCollectionName, assertFieldName, assertRecordKey } from '../core/names.js'
import type { AppendOptions, SetOptions } from '../core/workspace-types.js'
import { addToSet, appendRecord, deleteRecord, setField, setRecord } from '../core/write-rules.js'
import { LOCAL_ORIGIN, type CollectionRegistry, type LoadedCollection } from './collection-registry.js'
import type { CollectionSettingsBook } from './collection-settings.js'
import type { OfflineWrites } from './offline-writes.js'
import { WriteQueue } from './write-queue.js'

/** What a queued write runs against: the loaded collection and its settings. */
interface WriteTarget {
  entry: LoadedCollection
  rules: EffectiveSettings
}

export interface WorkspaceWritesOptions {
  registry: Pick<CollectionRegistry, 'readyEntry' | 'existing' | 'load'>
  settings: Pick<CollectionSettingsBook, 'cached' | 'settingsOf'>
  /** Throws when the workspace is closed. */
  assertOpen(): void
  /** After a write's transaction, `unsettled()`: what its acknowledgement also waits for, if anything. */
  offline?: Pick<OfflineWrites, 'unsettled'>
}

/**
 * The local writes of a workspace: their arguments checked, then queued in call order and
 * group-committed per collection (WriteQueue), each applied by the write rules of
 * core/write-rules under the collection's settings.
 */
export class WorkspaceWrites {
  private readonly assertOpen: () => void
  private readonly queue: WriteQueue<WriteTarget>

  constructor(options: WorkspaceWritesOptions) {
    const { registry, settings } = options
    this.assertOpen = options.assertOpen
    this.queue = new WriteQueue<WriteTarget>({
      ready: (name) => {
        const entry = registry.readyEntry(name)
        const rules = settings.cached(name)
        return entry === undefined || rules === undefined ? undefined : { entry, rules }
      },
      load: async (name, mustExist) => {
        const entry = mustExist ? await registry.existing(name) : await registry.load(name)
        return { entry, rules: await settings.settingsOf(name) }
      },
      // Writes accepted before close() still run: close waits for the queue.
      commit: ({ entry }, body) => {
        entry.collection.doc.transact(body, LOCAL_ORIGIN)
        const counted = options.offline?.unsettled()
        return counted === undefined ? entry.lastWrite : Promise.all([entry.lastWrite, counted]).then(() => undefined)
      },
    })
  }

  /** Resolves when every write queued so far has run. */
  idle(): Promise<void> {
    return this.queue.idle()
  }

  // The write methods are not async: an async method that returns the queue's promise adds a
  // promise of its own and a job to resolve it through the queue's, per write, which ten thousand
  // un-awaited sets kept alive until their group ran. Their argument checks reject instead of throwing.
  set(collection: string, key: string, value: JsonValue, options?: SetOptions): Promise<void> {
    const field = options?.field
    try {
      this.assertOpen()
      assertCollectionName(collection)
      assertRecordKey(key)
      assertJsonValue(value)
      if (field !== undefined) assertFieldName(field)
    } catch (err) {
      return Promise.reject(err)
    }
    if (field === undefined) return this.queue.push(collection, false, this.setRecord, key, value)
    return this.queue.push(collection, false, ({ entry, rules }) => setField(entry.collection, rules, key, field, value, LOCAL_ORIGIN, Date.now()))
  }

  /** A whole-record set, run in its group's transaction: one function for all of them (see WriteOp). */
  private readonly setRecord = ({ entry, rules }: WriteTarget, key: string, value: JsonValue): void =>
    setRecord(entry.collection, rules, key, value, LOCAL_ORIGIN, Date.now())

  delete(collection: string, key: string): Promise<boolean> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.queue.push(collection, true, this.deleteRecord, key)
  }

  private readonly deleteRecord = ({ entry, rules }: WriteTarget, key: string): boolean => deleteRecord(entry.collection, rules, key, LOCAL_ORIGIN)

  add(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
      assertRecordKey(key)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.queue.push(collection, false, ({ entry, rules }) => addToSet(entry.collection, rules, key, field, elements, LOCAL_ORIGIN))
  }

  remove(collection: string, key: string, field: string, elements: string[]): Promise<void> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.queue.push(collection, true, ({ entry }) => entry.collection.removeFromSet(key, field, elements, LOCAL_ORIGIN))
  }

  append(collection: string, value: JsonValue, options: AppendOptions = {}): Promise<{ key: string }> {
    try {
      this.assertOpen()
      assertCollectionName(collection)
      assertJsonValue(value)
      if (options.key !== undefined) assertRecordKey(options.key)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.queue.push(collection, false, ({ entry, rules }) => appendRecord(entry.collection, rules, value, options, LOCAL_ORIGIN, Date.now()))
  }
}
