import { KitsyncError } from './errors.js'
import { isFolderCollection, isInternalCollection } from './membership.js'

/**
 * Selective sync: which collections a device syncs. Pure; the daemon keeps the settings in
 * workspace.json (`items`, `localOnly`) and the sync engine asks `syncs()` for every collection
 * and sends `rules()` to peers as an INTEREST frame (docs/PROTOCOL.md).
 *
 * - `items`: names or patterns of the collections this device syncs (absent: all of them).
 * - `localOnly`: names or patterns never sent to anyone nor accepted from anyone.
 * - On-demand collections (a name starting with one of ON_DEMAND_PREFIXES, one per chart,
 *   possibly large) are matched only by an item that starts with that prefix (`drawings.*`,
 *   `drawings.AAPL-1D`): `*` alone does not pull every chart. A device syncs every on-demand
 *   collection it already has (written here, or fetched) unless it is local-only.
 * - kitsync's own collections (`_members`, `_revoked`, `_audit`...) always sync. A shared
 *   folder's manifest (`_folder.NAME`, with its files' documents) is selected like a collection:
 *   `*` takes it, `items set notes` leaves it out, `_folder.NAME` names it, and it can be local-only.
 *
 * Patterns: collection-name characters plus `*` (any run of characters, possibly none) and
 * `?` (one character); everything else is literal. The same rule is what peers evaluate.
 */

/** kitsync's own collections that sync whatever the items say (a shared folder's manifest is not one: it is selected). */
export function alwaysSyncs(name: string): boolean {
  return isInternalCollection(name) && !isFolderCollection(name)
}

/** Name prefixes of collections that are pulled only when asked for by name (or an explicit pattern). */
export const ON_DEMAND_PREFIXES: readonly string[] = ['drawings.']

const PATTERN = /^[A-Za-z0-9._*?-]{1,64}$/

/** One rule of an interest: collections matching `pattern` are wanted (`include`) or not. */
export interface InterestRule {
  include: boolean
  pattern: string
}

export function assertPattern(pattern: string): void {
  if (!PATTERN.test(pattern)) {
    throw new KitsyncError(
      'INVALID_NAME',
      `invalid item ${JSON.stringify(pattern)}: use a collection name or a pattern of letters, digits, '.', '_', '-', '*' and '?'`,
    )
  }
}

const compiled = new Map<string, RegExp>()

/** Whether a collection name matches a pattern (`*` any run, `?` one character, the rest literal). */
export function matchesPattern(name: string, pattern: string): boolean {
  let re = compiled.get(pattern)
  if (re === undefined) {
    const source = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.\\^$+()[\]{}|-]/g, '\\$&'))).join('')
    re = new RegExp(`^${source}$`)
    if (compiled.size > 1000) compiled.clear()
    compiled.set(pattern, re)
  }
  return re.test(name)
}

export function isOnDemand(name: string): boolean {
  return ON_DEMAND_PREFIXES.some((p) => name.startsWith(p))
}

/** A pattern that names on-demand collections explicitly (it starts with an on-demand prefix). */
function isOnDemandPattern(pattern: string): boolean {
  return ON_DEMAND_PREFIXES.some((p) => pattern.startsWith(p))
}

/**
 * What a peer said it wants: ordered rules, the last one that matches a name decides; a name no
 * rule matches is not wanted. kitsync's own collections are always wanted.
 */
export class Interest {
  constructor(readonly rules: readonly InterestRule[]) {}

  wants(name: string): boolean {
    if (alwaysSyncs(name)) return true
    for (let i = this.rules.length - 1; i >= 0; i--) {
      const rule = this.rules[i] as InterestRule
      if (matchesPattern(name, rule.pattern)) return rule.include
    }
    return false
  }
}

export interface SelectionSettings {
  /** Absent (or null): every collection (on-demand ones only when held). */
  items?: readonly string[] | null | undefined
  localOnly?: readonly string[] | undefined
}

/** Why a collection does or does not sync on this device (for `kitsync items`). */
export type SyncReason = 'internal' | 'local-only' | 'item' | 'on-demand, held' | 'not in items' | 'on demand (fetch it)'

export class ItemSelection {
  readonly items: readonly string[] | undefined
  readonly localOnlyPatterns: readonly string[]
  private readonly interest: Interest

  constructor(settings: SelectionSettings = {}) {
    const items = settings.items ?? undefined
    for (const p of [...(items ?? []), ...(settings.localOnly ?? [])]) assertPattern(p)
    this.items = items === undefined ? undefined : dedupe(items)
    this.localOnlyPatterns = dedupe(settings.localOnly ?? [])
    this.interest = new Interest(this.rules())
  }

  /** True when the device syncs everything (no `items`, no local-only). */
  get isEverything(): boolean {
    return this.items === undefined && this.localOnlyPatterns.length === 0
  }

  /**
   * The interest sent to peers: the items (or `*`), then on-demand prefixes excluded, then the
   * explicit on-demand items and the on-demand collections held here (`held`: names of the
   * collections this device has), then the local-only exclusions. Last match wins.
   */
  rules(held: Iterable<string> = []): InterestRule[] {
    const general = this.items ?? ['*']
    const explicit = general.filter((p) => isOnDemandPattern(p))
    // On-demand collections this device holds and syncs without an item naming them.
    const heldOnDemand = [...held].filter((n) => isOnDemand(n) && !this.interest.wants(n) && !this.localOnly(n)).sort()
    return [
      ...general.filter((p) => !isOnDemandPattern(p)).map((pattern) => ({ include: true, pattern })),
      ...ON_DEMAND_PREFIXES.map((prefix) => ({ include: false, pattern: `${prefix}*` })),
      ...[...explicit, ...heldOnDemand].map((pattern) => ({ include: true, pattern })),
      ...this.localOnlyPatterns.map((pattern) => ({ include: false, pattern })),
    ]
  }

  /** Whether this device pulls the collection from peers (without holding it yet). */
  wants(name: string): boolean {
    return this.interest.wants(name)
  }

  localOnly(name: string): boolean {
    return !alwaysSyncs(name) && this.localOnlyPatterns.some((p) => matchesPattern(name, p))
  }

  /** Whether the collection is exchanged with peers; `held`: this device has it already. */
  syncs(name: string, held: boolean): boolean {
    const reason = this.reason(name, held)
    return reason === 'internal' || reason === 'item' || reason === 'on-demand, held'
  }

  /** Alias of `syncs` for held collections (what the device holds and syncs). */
  holds(name: string): boolean {
    return this.syncs(name, true)
  }

  reason(name: string, held: boolean): SyncReason {
    if (alwaysSyncs(name)) return 'internal'
    if (this.localOnly(name)) return 'local-only'
    if (this.interest.wants(name)) return 'item'
    if (isOnDemand(name)) return held ? 'on-demand, held' : 'on demand (fetch it)'
    return 'not in items'
  }
}

export interface PatternChange {
  /** Replace the whole list; `null` (items only): back to everything. */
  set?: readonly string[] | null
  add?: readonly string[]
  remove?: readonly string[]
}

export interface ItemsChange {
  items?: PatternChange
  localOnly?: PatternChange
}

/** The settings after a change (pure; the caller stores them). */
export function applyItemsChange(current: SelectionSettings, change: ItemsChange): { items: string[] | undefined; localOnly: string[] } {
  for (const list of [change.items, change.localOnly]) {
    for (const p of [...(list?.set ?? []), ...(list?.add ?? []), ...(list?.remove ?? [])]) assertPattern(p)
  }
  let items = current.items === null || current.items === undefined ? undefined : [...current.items]
  if (change.items !== undefined) {
    if (change.items.set !== undefined) items = change.items.set === null ? undefined : [...change.items.set]
    if (change.items.add !== undefined && change.items.add.length > 0) {
      // Adding to "everything" keeps everything and adds what `*` does not cover (on-demand items).
      items = [...(items ?? ['*']), ...change.items.add]
    }
    if (change.items.remove !== undefined && change.items.remove.length > 0) {
      const remove = new Set(change.items.remove)
      if (items === undefined && [...remove].some((p) => !isOnDemandPattern(p))) {
        throw new KitsyncError(
          'INVALID_ARGUMENT',
          'this device syncs every collection: set the items it should sync (kitsync items set a,b) or make collections local-only (--local-only)',
        )
      }
      const missing = [...remove].filter((p) => !(items ?? []).includes(p))
      if (missing.length > 0) throw new KitsyncError('NOT_FOUND', `not among the items: ${missing.join(', ')}`)
      items = (items ?? []).filter((p) => !remove.has(p))
    }
  }
  let localOnly = [...(current.localOnly ?? [])]
  if (change.localOnly !== undefined) {
    if (change.localOnly.set !== undefined) localOnly = [...(change.localOnly.set ?? [])]
    if (change.localOnly.add !== undefined) localOnly = [...localOnly, ...change.localOnly.add]
    if (change.localOnly.remove !== undefined) {
      const remove = new Set(change.localOnly.remove)
      const missing = [...remove].filter((p) => !localOnly.includes(p))
      if (missing.length > 0) throw new KitsyncError('NOT_FOUND', `not among the local-only collections: ${missing.join(', ')}`)
      localOnly = localOnly.filter((p) => !remove.has(p))
    }
  }
  return { items: items === undefined ? undefined : dedupe(items), localOnly: dedupe(localOnly) }
}

function dedupe(list: readonly string[]): string[] {
  return [...new Set(list)]
}
