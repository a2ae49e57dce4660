import type * as Y from 'yjs'
import type { EffectiveSettings } from '../core/kinds.js'
import type { OpenConflict } from '../core/conflict-map.js'
import type { RecordChange, RecordCollection } from '../core/record-collection.js'
import type { DetectedConflict } from '../core/record-resolve.js'
import type { CollectionLog } from '../store/collection-log.js'

/** The types at the collection registry's edges (collection-registry.ts): what it hands out, and what it asks of the workspace. */

/** A collection document was loaded; `adopted`: it was created from a peer's copy, which no update event announced. */
export interface DocLoaded {
  name: string
  doc: Y.Doc
  adopted?: true
}

export interface LoadedCollection {
  collection: RecordCollection
  log: CollectionLog
  /** Settles when the last update of this collection is durable. */
  lastWrite: Promise<void>
}

/** What the registry asks of the workspace around it while it loads a collection. */
export interface RegistryHooks {
  /** Throws when the workspace is closed. */
  assertOpen(): void
  /** The collection's settings (kind, policy, field types). */
  settingsOf(name: string): Promise<EffectiveSettings>
  /** Conflicts this device found in a merged update (app collections). */
  conflicts(name: string, collection: RecordCollection, found: DetectedConflict[]): void
  /** A conflict another device recorded (app collections). */
  conflictRecorded(name: string, collection: RecordCollection, open: OpenConflict): void
  /** Called before the store listens to the document's updates (see onDocLoaded). */
  docLoaded(e: DocLoaded): void
  /** Record changes of an app collection. */
  changes(name: string, changes: RecordChange[]): void
}
