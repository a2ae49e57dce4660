import type { Command } from 'commander'
import { KitsyncError } from '../../core/errors.js'
import { formatRetention, parseHistorySetting } from '../../core/history-types.js'
import { KINDS } from '../../core/kinds.js'
import { BUILTIN_SECRET_RULES } from '../../core/secrets.js'
import type { CollectionChange, CollectionSettingsView, ConflictPolicy } from '../../core/workspace-types.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

interface SettingFlags {
  kind?: string
  policy?: string
  limit?: string[]
  secretRule?: string[]
  history?: string
}

function changeFrom(flags: SettingFlags, current: CollectionSettingsView | undefined): CollectionChange {
  const change: CollectionChange = {}
  if (flags.kind !== undefined) change.kind = flags.kind
  if (flags.policy !== undefined) change.policy = flags.policy as ConflictPolicy
  if (flags.history !== undefined) change.history = parseHistorySetting(flags.history)
  if (flags.limit !== undefined) {
    const limits: NonNullable<CollectionChange['limits']> = {}
    for (const item of flags.limit) {
      const m = /^(\w+)=(\d+|default)$/.exec(item)
      if (m === null) throw new KitsyncError('INVALID_ARGUMENT', `--limit takes NAME=NUMBER or NAME=default, not ${JSON.stringify(item)}`)
      limits[m[1] as 'maxRecords'] = m[2] === 'default' ? null : Number(m[2])
    }
    change.limits = limits
  }
  if (flags.secretRule !== undefined) {
    const rules = [...(current?.secretRules ?? [])]
    for (const item of flags.secretRule) {
      const i = item.indexOf('=')
      if (i <= 0) throw new KitsyncError('INVALID_ARGUMENT', `--secret-rule takes NAME=REGEX, not ${JSON.stringify(item)}`)
      const name = item.slice(0, i)
      const pattern = item.slice(i + 1)
      const at = rules.findIndex((r) => r.name === name)
      if (pattern === '') rules.splice(at, at < 0 ? 0 : 1)
      else if (at >= 0) rules[at] = { name, pattern }
      else rules.push({ name, pattern })
    }
    change.secretRules = rules
  }
  return change
}

export function formatSettings(s: CollectionSettingsView): string {
  const limits = Object.entries(s.limits).map(([k, v]) => `${k}=${v}`)
  const fields = Object.entries(s.fieldTypes).map(([k, v]) => `${k} (${v})`)
  const lines = [
    `collection  ${s.name}`,
    `kind        ${s.kind}: ${s.description}`,
    `policy      ${s.policy}`,
    `limits      ${limits.length === 0 ? 'none' : limits.join(', ')}`,
    `history     ${formatRetention(s.history)}`,
  ]
  if (fields.length > 0) lines.push(`fields      ${fields.join(', ')}`)
  if (s.appendOnly) lines.push('records     append-only')
  if (s.onDemand) lines.push('sync        on demand')
  if (s.kind === 'history')
    lines.push(
      `secret rules ${BUILTIN_SECRET_RULES.length} built-in${s.secretRules.length === 0 ? '' : `, plus ${s.secretRules.map((r) => r.name).join(', ')}`}`,
    )
  return lines.join('\n') + '\n'
}

export function register(program: Command, io: CliIO): void {
  const collection = example(
    program.command('collection').description("show or change a collection's kind, conflict policy and limits (synced to every device)"),
    'kitsync collection show alerts',
  )
  const settingOptions = (cmd: Command): Command =>
    cmd
      .option('--policy <policy>', 'conflict policy: merge, latest_wins, keep_both or ask')
      .option('--limit <name=n>', "limit: maxRecords=N or maxSetSize=N (NAME=default restores the kind's), repeatable", collect)
      .option('--history <retention>', 'versions kept: a count (50), days (30d), both (50,30d), off or default (100 versions, 90 days)')
      .option('--secret-rule <name=regex>', 'history: add (or with an empty regex remove) a secret rule, repeatable', collect)
  example(collection.command('show').description('settings of one collection').argument('<name>', 'collection name'), 'kitsync collection show alerts').action(
    async (name: string, _o: unknown, cmd: Command) => {
      const opts = globals(cmd)
      const s = await withWorkspace(io, opts, (ws) => ws.collection(name))
      print(io, opts, s, () => formatSettings(s))
    },
  )
  example(
    settingOptions(
      collection
        .command('create')
        .description('choose the kind of a new collection (and its policy and limits)')
        .argument('<name>', 'collection name')
        .requiredOption('--kind <kind>', `one of ${Object.keys(KINDS).join(', ')}`),
    ),
    'kitsync collection create trades-2026 --kind journal',
    'kitsync collection create lab-notes --kind issues --policy ask',
  ).action(async (name: string, flags: SettingFlags, cmd: Command) => {
    const opts = globals(cmd)
    const s = await withWorkspace(io, opts, (ws) => ws.configure(name, changeFrom(flags, undefined)))
    print(io, opts, s, () => formatSettings(s))
  })
  example(
    settingOptions(collection.command('set').description("change a collection's policy, limits or secret rules").argument('<name>', 'collection name')),
    'kitsync collection set alerts --policy ask --limit maxRecords=1000',
    'kitsync collection set alerts --history 50,30d',
    "kitsync collection set history --secret-rule vault='vault (login|write) .*'",
  ).action(async (name: string, flags: SettingFlags, cmd: Command) => {
    const opts = globals(cmd)
    const s = await withWorkspace(io, opts, async (ws) => ws.configure(name, changeFrom(flags, await ws.collection(name))))
    print(io, opts, s, () => formatSettings(s))
  })
  example(program.command('kinds').description('list the collection kinds with their merge rules and limits'), 'kitsync kinds').action(
    async (_o: unknown, cmd: Command) => {
      const opts = globals(cmd)
      const kinds = Object.values(KINDS).map((k) => ({
        kind: k.name,
        description: k.description,
        policy: k.policy,
        limits: k.limits,
        fieldTypes: k.fieldTypes,
        appendOnly: k.appendOnly === true,
        onDemand: k.onDemand === true,
      }))
      print(
        io,
        opts,
        kinds,
        () =>
          kinds
            .map(
              (k) =>
                `${k.kind.padEnd(11)} ${k.policy.padEnd(12)} ${Object.entries(k.limits)
                  .map(([n, v]) => `${n}=${v}`)
                  .join(' ')
                  .padEnd(16)} ${k.description}`,
            )
            .join('\n') + '\n',
      )
    },
  )
}
