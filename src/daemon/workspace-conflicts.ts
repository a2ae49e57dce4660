import type { OpenConflict } from '../core/conflict-map.js'
import { resolveConflict, settleConflict } from '../core/conflicts.js'
import { assertJsonValue } from '../core/json.js'
import type { AuditType } from '../core/membership.js'
import type { RecordCollection } from '../core/record-collection.js'
import type { DetectedConflict } from '../core/record-resolve.js'
import type { ConflictView, ResolveChoice, ResolveResult, WorkspaceEvents } from '../core/workspace-types.js'
import { LOCAL_ORIGIN, type CollectionRegistry } from './collection-registry.js'
import type { CollectionSettingsBook } from './collection-settings.js'
import { debugLog } from '../core/debug-log.js'

const log = debugLog('daemon:conflicts')

/**
 * Origin of the writes that settle a conflict a merged update brought (keep_both's copies):
 * made here, but caused by the remote write, so their change events say `remote`.
 */
const SETTLE_ORIGIN = Symbol('kitsync:settle')

export interface WorkspaceConflictsOptions {
  /** This device (it settles the conflicts it finds). */
  deviceId: string
  registry: Pick<CollectionRegistry, 'load' | 'existing'>
  settings: Pick<CollectionSettingsBook, 'settingsOf'>
  /** Append to the synced audit log. */
  audit(type: AuditType, reason: string): Promise<void>
  /** Where conflict events go (the workspace's subscribers). */
  events: { emit<K extends keyof WorkspaceEvents>(event: K, payload: WorkspaceEvents[K]): void }
  /** Whether the workspace is closed (nothing is settled then). */
  closed(): boolean
}

/**
 * The conflicts of a workspace's collections: settled by each collection's policy when a merged
 * update brings them, announced once to subscribers, listed, and resolved by hand (`ask`).
 */
export class WorkspaceConflicts {
  private readonly options: WorkspaceConflictsOptions
  /** Ids of the conflicts already announced to subscribers. */
  private readonly seen = new Set<string>()

  constructor(options: WorkspaceConflictsOptions) {
    this.options = options
  }

  /** The open conflicts of `names`; `mustExist`: a collection asked for by name that does not exist is an error. */
  async list(names: string[], mustExist: boolean): Promise<ConflictView[]> {
    const { registry } = this.options
    const out: ConflictView[] = []
    for (const name of names) {
      const c = mustExist ? (await registry.existing(name)).collection : (await registry.load(name)).collection
      for (const open of c.openConflicts()) out.push({ collection: name, ...open })
    }
    return out
  }

  async resolve(collection: string, id: string, choice: ResolveChoice): Promise<ResolveResult> {
    const entry = await this.options.registry.existing(collection)
    const rules = await this.options.settings.settingsOf(collection)
    if ('value' in choice) {
      assertJsonValue(choice.value)
      rules.kind.validate(choice.value, { collection, secretRules: rules.secretRules, now: Date.now() })
    }
    const r = resolveConflict(entry.collection, id, choice, LOCAL_ORIGIN)
    await entry.lastWrite
    await this.options.audit('conflict', `resolved conflict ${id} on ${collection}/${r.key}${r.field === undefined ? '' : `.${r.field}`}`)
    return { collection, ...r, ...(r.value === undefined ? {} : { value: r.value }) }
  }

  /** Settle conflicts found in a merged update by the collection's policy; tell subscribers and the audit log. */
  found(name: string, collection: RecordCollection, found: DetectedConflict[]): void {
    // After the merging transaction: settling writes, which must not happen inside its observers.
    queueMicrotask(() => {
      if (this.options.closed()) return
      for (const c of found) {
        const event = settleConflict(collection, c, SETTLE_ORIGIN, this.options.deviceId, Date.now())
        if (this.seen.has(event.id)) continue
        this.seen.add(event.id)
        this.options.events.emit('sync:conflict', event)
        void this.options
          .audit(
            'conflict',
            `${event.policy} ${event.resolution}: ${name}/${c.key}${c.field === undefined ? '' : `.${c.field}`} (${event.versions.length} versions, id ${event.id})`,
          )
          .catch((err: unknown) => log(`cannot write the audit entry of conflict ${event.id}`, err))
      }
    })
  }

  /** Recorded by another device: tell this device's subscribers once. */
  recorded(name: string, collection: RecordCollection, open: OpenConflict): void {
    if (this.seen.has(open.id)) return
    this.seen.add(open.id)
    const { detectedBy: _by, ...rest } = open
    this.options.events.emit('sync:conflict', { ...rest, collection: name, policy: collection.policy, resolution: 'open' })
  }
}
