import { KitsyncError } from '../core/errors.js'
import { historySettingOf } from '../core/history-types.js'
import type { JsonValue } from '../core/json.js'
import {
  COLLECTIONS_COLLECTION,
  effectiveSettings,
  isConflictPolicy,
  isKindName,
  KINDS,
  LIMIT_NAMES,
  toCollectionSettings,
  type CollectionSettings,
  type EffectiveSettings,
} from '../core/kinds.js'
import { isInternalCollection } from '../core/membership.js'
import { secretRuleError } from '../core/secrets.js'
import type { CollectionChange, CollectionSettingsView } from '../core/workspace-types.js'
import { debugLog } from '../core/debug-log.js'
import { LOCAL_ORIGIN, type CollectionRegistry } from './collection-registry.js'

const log = debugLog('daemon:settings')

/** What the settings need of the collections: `_collections` itself, and the collections it configures. */
export type SettingsRegistry = Pick<CollectionRegistry, 'load' | 'loading' | 'isKnown' | 'rulesChanged'>

/**
 * The settings of each collection (kind, conflict policy, limits, secret rules), kept in the
 * synced `_collections` collection, and applied to the loaded collections whichever device
 * changed them.
 */
export class CollectionSettingsBook {
  private settingsWatch: Promise<void> | undefined
  /** Settings of each collection as `_collections` says now. */
  private readonly settingsCache = new Map<string, EffectiveSettings>()

  constructor(private readonly registry: SettingsRegistry) {}

  /** The settings if they are known now (for the synchronous path of the write queue). */
  cached(name: string): EffectiveSettings | undefined {
    return this.settingsCache.get(name)
  }

  async view(name: string): Promise<CollectionSettingsView> {
    return settingsView(name, await this.settingsOf(name))
  }

  async configure(name: string, change: CollectionChange): Promise<CollectionSettingsView> {
    const store = await this.registry.load(COLLECTIONS_COLLECTION)
    const current = toCollectionSettings(name, store.collection.get(name))
    const next: CollectionSettings = { ...current }
    if (change.kind !== undefined) {
      if (!isKindName(change.kind))
        throw new KitsyncError('INVALID_ARGUMENT', `unknown kind ${JSON.stringify(change.kind)}; kinds: ${Object.keys(KINDS).join(', ')}`)
      if (change.kind !== current.kind && this.registry.isKnown(name) && (await this.registry.load(name)).collection.size > 0) {
        throw new KitsyncError('INVALID_ARGUMENT', `${name} already holds records as ${current.kind}; a kind is chosen before the first record`, {
          details: { collection: name },
        })
      }
      next.kind = change.kind
    }
    if (change.policy !== undefined) {
      if (!isConflictPolicy(change.policy))
        throw new KitsyncError('INVALID_ARGUMENT', `unknown conflict policy ${JSON.stringify(change.policy)}; use merge, latest_wins, keep_both or ask`)
      next.policy = change.policy
    }
    if (change.limits !== undefined) {
      const limits = { ...(current.limits ?? {}) }
      for (const [k, v] of Object.entries(change.limits)) {
        if (!(LIMIT_NAMES as readonly string[]).includes(k))
          throw new KitsyncError('INVALID_ARGUMENT', `unknown limit ${JSON.stringify(k)}; limits: ${LIMIT_NAMES.join(', ')}`)
        const name = k as (typeof LIMIT_NAMES)[number]
        if (v === null) delete limits[name]
        else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) limits[name] = v
        else throw new KitsyncError('INVALID_ARGUMENT', `limit ${k} must be a whole number of at least 0`)
      }
      next.limits = limits
    }
    if (change.secretRules !== undefined) {
      for (const rule of change.secretRules) {
        const error = secretRuleError(rule)
        if (typeof rule.name !== 'string' || rule.name.length === 0 || error !== undefined)
          throw new KitsyncError('INVALID_ARGUMENT', `secret rule ${JSON.stringify(rule.name)}: ${error ?? 'needs a name'}`)
      }
      next.secretRules = change.secretRules.map((r) => ({ name: r.name, pattern: r.pattern }))
    }
    if (change.history !== undefined) {
      if (change.history === null) delete next.history
      else {
        const history = historySettingOf(change.history)
        if (history === undefined || (history !== 'off' && history.count === undefined && history.days === undefined))
          throw new KitsyncError('INVALID_ARGUMENT', 'history must be off, or a count and/or days of at least 1')
        next.history = history
      }
    }
    store.collection.set(name, JSON.parse(JSON.stringify(next)) as JsonValue, LOCAL_ORIGIN)
    await store.lastWrite
    this.settingsCache.delete(name)
    this.applySettings(name)
    return settingsView(name, effectiveSettings(next))
  }

  /** Settings of a collection from `_collections` (kind by name when it has none). */
  async settingsOf(name: string): Promise<EffectiveSettings> {
    const cached = this.settingsCache.get(name)
    if (cached !== undefined) return cached
    let rules: EffectiveSettings
    if (isInternalCollection(name)) rules = effectiveSettings({ kind: 'generic' })
    else {
      await this.watchSettings()
      rules = effectiveSettings(toCollectionSettings(name, (await this.registry.load(COLLECTIONS_COLLECTION)).collection.get(name)))
    }
    // Dropped whenever `_collections` changes (see watchSettings).
    this.settingsCache.set(name, rules)
    return rules
  }

  /** Keep loaded collections in step with `_collections`, whichever device changed it. */
  private watchSettings(): Promise<void> {
    this.settingsWatch ??= (async () => {
      const store = (await this.registry.load(COLLECTIONS_COLLECTION)).collection
      store.onChange((changes) => {
        for (const c of changes) {
          this.settingsCache.delete(c.key)
          this.applySettings(c.key)
        }
      })
    })()
    return this.settingsWatch
  }

  private applySettings(name: string): void {
    const p = this.registry.loading(name)
    const store = this.registry.loading(COLLECTIONS_COLLECTION)
    // A collection not loaded has its index rows checked against its new rules when next read.
    if (p === undefined) void this.registry.rulesChanged(name)
    if (p === undefined || store === undefined) return
    void Promise.all([p, store]).then(
      ([entry, settings]) => {
        const rules = effectiveSettings(toCollectionSettings(name, settings.collection.get(name)))
        entry.collection.configure({ policy: rules.policy, fieldTypes: { ...rules.kind.fieldTypes } })
        // Records may read differently under the new rules: their index rows follow.
        this.registry
          .rulesChanged(name)
          .catch((err: unknown) => log(`collection ${name}: index rows not rebuilt for its new settings; the next open rebuilds them`, err))
      },
      () => undefined,
    )
  }
}

function settingsView(name: string, rules: EffectiveSettings): CollectionSettingsView {
  return {
    name,
    kind: rules.kind.name,
    description: rules.kind.description,
    policy: rules.policy,
    limits: rules.limits,
    fieldTypes: { ...rules.kind.fieldTypes },
    appendOnly: rules.kind.appendOnly === true,
    onDemand: rules.kind.onDemand === true,
    secretRules: rules.secretRules,
    history: rules.history,
  }
}
