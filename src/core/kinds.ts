import { effectiveRetention, historySettingOf, type HistoryRetention, type HistorySetting } from './history-types.js'
import { KitsyncError } from './errors.js'
import { isJsonObject, type JsonObject, type JsonValue } from './json.js'
import type { FieldType } from './record-slots.js'
import { findSecret, type SecretRule } from './secrets.js'
import { ON_DEMAND_PREFIXES } from './selection.js'
import type { ConflictPolicy } from './workspace-types.js'

/**
 * Collection kinds: what the apps kitsync serves keep in a collection, with the merge rule,
 * limits and checks of each. A collection's kind comes from its settings in `_collections`
 * (`kitsync collection create NAME --kind K`), else from its name (`watchlists`, `alerts`,
 * `drawings.<chart>`, ...), else it is `generic`. Checks run on the writing device; updates
 * merged from peers are taken as they are (a device cannot refuse what another already wrote).
 */

export const KIND_NAMES = ['generic', 'watchlists', 'alerts', 'templates', 'drawings', 'positions', 'settings', 'journal', 'history', 'ssh', 'issues'] as const
export type KindName = (typeof KIND_NAMES)[number]
export const CONFLICT_POLICIES = ['merge', 'latest_wins', 'keep_both', 'ask'] as const satisfies readonly ConflictPolicy[]

export interface KindLimits {
  /** Records in the collection. */
  maxRecords?: number
  /** Elements in one set field of a record (watchlist symbols). */
  maxSetSize?: number
}

export const LIMIT_NAMES = ['maxRecords', 'maxSetSize'] as const satisfies readonly (keyof KindLimits)[]

export interface KindContext {
  collection: string
  /** Extra secret rules of the collection (history). */
  secretRules: SecretRule[]
  now: number
}

export interface CollectionKind {
  name: KindName
  description: string
  policy: ConflictPolicy
  limits: KindLimits
  fieldTypes: Record<string, FieldType>
  /** Records cannot be changed or deleted once written. */
  appendOnly?: true
  /** Not held by a device until it asks for the collection. */
  onDemand?: true
  /** Check and normalise a whole record before it is written (throws a KitsyncError). */
  validate(value: JsonValue, ctx: KindContext): JsonValue
  /** The key of a record appended without one (history: the dedup key). */
  keyOf?(value: JsonObject): string
}

/** Settings of one collection, synced in `_collections`. */
export interface CollectionSettings {
  kind: KindName
  policy?: ConflictPolicy
  limits?: KindLimits
  /** history: secret rules added to the built-in ones. */
  secretRules?: SecretRule[]
  /** How long old versions of records are kept (default: DEFAULT_HISTORY). */
  history?: HistorySetting
}

export const COLLECTIONS_COLLECTION = '_collections'

function objectOf(value: JsonValue, ctx: KindContext, kind: string): JsonObject {
  if (!isJsonObject(value))
    throw new KitsyncError('INVALID_RECORD', `${ctx.collection} holds ${kind} records: give a JSON object`, { details: { collection: ctx.collection } })
  return value
}

function requireString(o: JsonObject, field: string, ctx: KindContext, kind: string): string {
  const v = o[field]
  if (typeof v !== 'string' || v.trim().length === 0) {
    throw new KitsyncError('INVALID_RECORD', `a ${kind} record in ${ctx.collection} needs a non-empty string field "${field}"`, {
      details: { collection: ctx.collection, field },
    })
  }
  return v
}

function optionalType(o: JsonObject, field: string, type: 'string' | 'number' | 'boolean', ctx: KindContext): void {
  if (o[field] !== undefined && o[field] !== null && typeof o[field] !== type) {
    throw new KitsyncError('INVALID_RECORD', `field "${field}" in ${ctx.collection} must be a ${type}`, { details: { collection: ctx.collection, field } })
  }
}

function stringArray(o: JsonObject, field: string, ctx: KindContext): void {
  const v = o[field]
  if (v === undefined) return
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'string')) {
    throw new KitsyncError('INVALID_RECORD', `field "${field}" in ${ctx.collection} must be an array of strings`, {
      details: { collection: ctx.collection, field },
    })
  }
}

const anyObject = (kind: string) => (value: JsonValue, ctx: KindContext) => objectOf(value, ctx, kind)

/** Private key material in any string of a value, or in a field whose name says it holds a secret. */
const PRIVATE_KEY_TEXT = [
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/,
  /PuTTY-User-Key-File-\d/,
  /b3BlbnNzaC1rZXktdjE/,
  /"kty"\s*:\s*"(RSA|EC|OKP)"[^}]*"d"\s*:/,
]
const SECRET_FIELD = /^(private_?key|privkey|identity_?file_?content|key_?data|key_?material|passphrase|password|passwd|secret)$/i

export function assertNoPrivateKey(value: JsonValue, ctx: KindContext, path = ''): void {
  if (typeof value === 'string') {
    if (PRIVATE_KEY_TEXT.some((re) => re.test(value))) {
      throw new KitsyncError(
        'PRIVATE_KEY_REFUSED',
        `${path === '' ? 'the record' : `field "${path}"`} holds private key material; private keys never leave a device, store only the key's fingerprint`,
        {
          details: { collection: ctx.collection, field: path },
        },
      )
    }
    return
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertNoPrivateKey(v, ctx, `${path}[${i}]`))
    return
  }
  if (isJsonObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      const p = path === '' ? k : `${path}.${k}`
      if (SECRET_FIELD.test(k) && v !== null && v !== '') {
        throw new KitsyncError(
          'PRIVATE_KEY_REFUSED',
          `field "${p}" would hold a secret; SSH profiles keep metadata only (host, port, user, key fingerprint, name, tags)`,
          {
            details: { collection: ctx.collection, field: p },
          },
        )
      }
      assertNoPrivateKey(v, ctx, p)
    }
  }
}

const FINGERPRINT = /^(SHA256:[A-Za-z0-9+/]{43}=?|MD5:([0-9a-f]{2}:){15}[0-9a-f]{2}|([0-9a-f]{2}:){15}[0-9a-f]{2})$/

/** FNV-1a, 52 bits, base 36: a short stable key from text (not a security hash). */
export function shortHash(text: string): string {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0
  }
  return (h1.toString(36) + (h2 & 0xfffff).toString(36)).padStart(11, '0')
}

export const KINDS: Record<KindName, CollectionKind> = {
  generic: {
    name: 'generic',
    description: 'any JSON records; fields merge',
    policy: 'merge',
    limits: {},
    fieldTypes: {},
    validate: (value) => value,
  },
  watchlists: {
    name: 'watchlists',
    description: 'named lists of symbols; adds and removes merge',
    policy: 'merge',
    limits: { maxSetSize: 1000 },
    fieldTypes: { symbols: 'set' },
    validate: (value, ctx) => {
      const o = objectOf(value, ctx, 'watchlist')
      optionalType(o, 'name', 'string', ctx)
      stringArray(o, 'symbols', ctx)
      if (Array.isArray(o.symbols)) return { ...o, symbols: [...new Set((o.symbols as string[]).map((s) => s.trim()).filter((s) => s.length > 0))] }
      return o
    },
  },
  alerts: {
    name: 'alerts',
    description: 'price alerts; the latest version of an alert wins',
    policy: 'latest_wins',
    limits: { maxRecords: 500 },
    fieldTypes: {},
    validate: (value, ctx) => {
      const o = objectOf(value, ctx, 'alert')
      requireString(o, 'symbol', ctx, 'alert')
      optionalType(o, 'price', 'number', ctx)
      optionalType(o, 'active', 'boolean', ctx)
      return o
    },
  },
  templates: {
    name: 'templates',
    description: 'chart or layout templates; the latest version wins',
    policy: 'latest_wins',
    limits: { maxRecords: 50 },
    fieldTypes: {},
    validate: anyObject('template'),
  },
  drawings: {
    name: 'drawings',
    description: 'drawings of one chart (collection drawings.<chart>), synced on demand',
    policy: 'latest_wins',
    limits: { maxRecords: 100 },
    fieldTypes: {},
    onDemand: true,
    validate: anyObject('drawing'),
  },
  positions: {
    name: 'positions',
    description: 'open positions; the latest version wins',
    policy: 'latest_wins',
    limits: {},
    fieldTypes: {},
    validate: (value, ctx) => {
      const o = objectOf(value, ctx, 'position')
      requireString(o, 'symbol', ctx, 'position')
      if (typeof o.quantity !== 'number' || !Number.isFinite(o.quantity)) {
        throw new KitsyncError('INVALID_RECORD', `a position in ${ctx.collection} needs a number field "quantity"`, {
          details: { collection: ctx.collection, field: 'quantity' },
        })
      }
      optionalType(o, 'price', 'number', ctx)
      return o
    },
  },
  settings: {
    name: 'settings',
    description: 'settings; each field merges on its own, the latest write of a field wins by clock',
    policy: 'merge',
    limits: {},
    fieldTypes: {},
    validate: (value) => value,
  },
  journal: {
    name: 'journal',
    description: 'append-only entries; concurrent appends are all kept',
    policy: 'merge',
    limits: {},
    fieldTypes: {},
    appendOnly: true,
    validate: (value) => value,
  },
  history: {
    name: 'history',
    description: 'shell command history, one record per command and session; commands carrying secrets are refused',
    policy: 'merge',
    limits: {},
    fieldTypes: {},
    validate: (value, ctx) => {
      const o = objectOf(value, ctx, 'command')
      const command = requireString(o, 'command', ctx, 'command')
      optionalType(o, 'session', 'string', ctx)
      optionalType(o, 'cwd', 'string', ctx)
      optionalType(o, 'exitCode', 'number', ctx)
      for (const field of ['command', 'cwd'] as const) {
        const text = o[field]
        if (typeof text !== 'string') continue
        const rule = findSecret(text, ctx.secretRules)
        if (rule !== undefined) {
          throw new KitsyncError('SECRET_REFUSED', `the ${field} looks like it carries a secret (rule ${rule.name}); it was not stored`, {
            details: { collection: ctx.collection, rule: rule.name },
          })
        }
      }
      return { ...o, command: command.trim(), session: typeof o.session === 'string' ? o.session : 'default' }
    },
    keyOf: (o) => shortHash(`${typeof o.session === 'string' ? o.session : 'default'}\u0000${String(o.command).trim()}`),
  },
  ssh: {
    name: 'ssh',
    description: 'SSH profile metadata (host, port, user, key fingerprint, name, tags); private keys are refused',
    policy: 'merge',
    limits: {},
    fieldTypes: { tags: 'set' },
    validate: (value, ctx) => {
      const o = objectOf(value, ctx, 'SSH profile')
      assertNoPrivateKey(o, ctx)
      requireString(o, 'host', ctx, 'SSH profile')
      optionalType(o, 'user', 'string', ctx)
      optionalType(o, 'name', 'string', ctx)
      stringArray(o, 'tags', ctx)
      const port = o.port ?? 22
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw new KitsyncError('INVALID_RECORD', `port in ${ctx.collection} must be an integer from 1 to 65535`, {
          details: { collection: ctx.collection, field: 'port' },
        })
      }
      if (o.keyFingerprint !== undefined && (typeof o.keyFingerprint !== 'string' || !FINGERPRINT.test(o.keyFingerprint))) {
        throw new KitsyncError(
          'INVALID_RECORD',
          `keyFingerprint in ${ctx.collection} must look like SHA256:<43 base64 characters> (ssh-keygen -lf) or an MD5 fingerprint`,
          {
            details: { collection: ctx.collection, field: 'keyFingerprint' },
          },
        )
      }
      return { ...o, port }
    },
  },
  issues: {
    name: 'issues',
    description: 'issues: fields by latest write (clock), tags and notes append-only, dependencies',
    policy: 'merge',
    limits: {},
    fieldTypes: { tags: 'growset', notes: 'log', dependencies: 'set' },
    validate: (value, ctx) => {
      const o = objectOf(value, ctx, 'issue')
      optionalType(o, 'title', 'string', ctx)
      optionalType(o, 'status', 'string', ctx)
      stringArray(o, 'tags', ctx)
      stringArray(o, 'dependencies', ctx)
      if (o.notes !== undefined && !Array.isArray(o.notes))
        throw new KitsyncError('INVALID_RECORD', `notes in ${ctx.collection} is a list`, { details: { collection: ctx.collection, field: 'notes' } })
      return o
    },
  },
}

const BY_NAME: Record<string, KindName> = {
  watchlists: 'watchlists',
  alerts: 'alerts',
  templates: 'templates',
  drawings: 'drawings',
  positions: 'positions',
  settings: 'settings',
  journal: 'journal',
  history: 'history',
  'command-history': 'history',
  ssh: 'ssh',
  'ssh-profiles': 'ssh',
  issues: 'issues',
}

/** The kind a collection has when its settings do not name one. */
export function defaultKindFor(collection: string): KindName {
  const exact = BY_NAME[collection]
  if (exact !== undefined) return exact
  // Collections named `drawings.<chart>` hold one chart's drawings and are synced on demand.
  if (ON_DEMAND_PREFIXES.some((p) => collection.startsWith(p))) return 'drawings'
  return 'generic'
}

export function isKindName(name: unknown): name is KindName {
  return typeof name === 'string' && (KIND_NAMES as readonly string[]).includes(name)
}

export function isConflictPolicy(name: unknown): name is ConflictPolicy {
  return typeof name === 'string' && (CONFLICT_POLICIES as readonly string[]).includes(name)
}

/** Settings as stored in `_collections` (anything malformed falls back to the defaults). */
export function toCollectionSettings(collection: string, value: JsonValue | undefined): CollectionSettings {
  const out: CollectionSettings = { kind: defaultKindFor(collection) }
  if (!isJsonObject(value)) return out
  if (isKindName(value.kind)) out.kind = value.kind
  if (isConflictPolicy(value.policy)) out.policy = value.policy
  if (isJsonObject(value.limits)) {
    const limits: KindLimits = {}
    for (const name of LIMIT_NAMES) {
      const v = value.limits[name]
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0) limits[name] = v
    }
    out.limits = limits
  }
  if (Array.isArray(value.secretRules)) {
    out.secretRules = value.secretRules.filter(
      (r): r is { name: string; pattern: string } => isJsonObject(r) && typeof r.name === 'string' && typeof r.pattern === 'string',
    ) as SecretRule[]
  }
  const history = historySettingOf(value.history)
  if (history !== undefined) out.history = history
  return out
}

/** What applies to a collection: its kind with the settings' policy and limits on top. */
export interface EffectiveSettings {
  kind: CollectionKind
  policy: ConflictPolicy
  limits: KindLimits
  secretRules: SecretRule[]
  history: HistoryRetention
}

export function effectiveSettings(settings: CollectionSettings): EffectiveSettings {
  const kind = KINDS[settings.kind]
  return {
    kind,
    policy: settings.policy ?? kind.policy,
    limits: { ...kind.limits, ...settings.limits },
    secretRules: settings.secretRules ?? [],
    history: effectiveRetention(settings.history),
  }
}
