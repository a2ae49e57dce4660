import { throwIfAborted } from '../core/abort.js'
import type { JsonValue } from '../core/json.js'
import { checkRecordLimit, importError, importRules, planRecord, problemOf, toImportSource } from '../core/import-plan.js'
import type { EffectiveSettings } from '../core/kinds.js'
import type { ImportCollectionReport, ImportOptions, ImportProblem, ImportReport, ImportSource } from '../core/transfer-types.js'
import type { Workspace } from '../core/workspace-types.js'

/**
 * `importRecords`: load records (a JSON export, a git export, anything of ImportSource's shape)
 * into a workspace as new writes. Two passes: the plan checks every record against its
 * collection's kind and compares it with what is there; any problem fails the whole import
 * before a write is made. Then the writes go in slices with a turn of the event loop between
 * them, so that an import run inside an app's own process never holds that process's event loop
 * for long (10,000 records written as one group held it for 100+ ms; see bench `import`).
 */

/** What the import needs of a workspace (WorkspaceTransfer gives it from a LocalWorkspace). */
export type ImportHost = Pick<Workspace, 'collection' | 'get' | 'getAll' | 'configure' | 'set' | 'delete'> & {
  /**
   * Records in a collection, or undefined if it does not exist. Asked only for the collections
   * of the source: `list()` would load every collection of the workspace.
   */
  recordCount(name: string): Promise<number | undefined>
}

export interface ImportTuning {
  maxRecordBytes: number
  /** Give the event loop a turn (setImmediate by default). */
  yieldTurn?: () => Promise<void>
  /** The event loop is given a turn once a slice held it this long (ms). */
  budgetMs?: number
  now?: () => number
}

interface PlannedCollection {
  name: string
  rules: EffectiveSettings
  exists: boolean
  writes: { key: string; value: JsonValue }[]
  deletes: string[]
  report: ImportCollectionReport
  configure?: Parameters<Workspace['configure']>[1]
}

const setImmediateTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Bounds of a write slice: it grows while slices take less than the budget, and shrinks when one takes more. */
const MIN_SLICE = 4
export const MAX_SLICE = 256

export async function importRecords(host: ImportHost, input: ImportSource, options: ImportOptions, tuning: ImportTuning): Promise<ImportReport> {
  const started = performance.now()
  const source = toImportSource(input)
  const yieldTurn = tuning.yieldTurn ?? setImmediateTurn
  const budget = tuning.budgetMs ?? 3
  const now = tuning.now ?? Date.now
  let turnStart = performance.now()
  const pace = async (): Promise<void> => {
    if (performance.now() - turnStart < budget) return
    await yieldTurn()
    throwIfAborted(options.signal, 'the import')
    turnStart = performance.now()
  }
  // Turns first: the caller may have held this one for a while already (building a source of
  // 10,000 records takes a few ms), and the plan would add its budget. Two: called from an I/O
  // callback, the first setImmediate runs before the loop comes back to its timers.
  await yieldTurn()
  await yieldTurn()
  throwIfAborted(options.signal, 'the import')
  turnStart = performance.now()

  const problems: ImportProblem[] = []
  const plans: PlannedCollection[] = []
  for (const name of Object.keys(source.collections).sort()) {
    const src = source.collections[name] as (typeof source.collections)[string]
    let count: number | undefined
    let rules: EffectiveSettings
    let view
    try {
      count = await host.recordCount(name)
      view = await host.collection(name)
      rules = importRules(name, view, (count ?? 0) > 0, src)
    } catch (err) {
      problems.push(problemOf(name, undefined, err))
      continue
    }
    const exists = count !== undefined
    const report: ImportCollectionReport = {
      collection: name,
      kind: rules.kind.name,
      added: 0,
      changed: 0,
      unchanged: 0,
      deleted: 0,
      missing: 0,
      created: !exists,
    }
    const plan: PlannedCollection = { name, rules, exists, writes: [], deletes: [], report }
    if ((count ?? 0) === 0 && src.settings !== undefined) {
      const change = { kind: rules.kind.name, policy: rules.policy, limits: { ...rules.limits } }
      if (view.kind !== change.kind || view.policy !== change.policy || JSON.stringify(view.limits) !== JSON.stringify(change.limits)) plan.configure = change
    }
    const seen = new Set<string>()
    for (const [key, value] of Object.entries(src.records)) {
      await pace()
      if (options.prune === true) seen.add(key)
      try {
        const current = (count ?? 0) > 0 ? await host.get(name, key) : undefined
        const p = planRecord(name, rules, key, value, current, { now: now(), maxRecordBytes: tuning.maxRecordBytes })
        report[p.status]++
        if (p.status !== 'unchanged') plan.writes.push({ key, value: p.value })
      } catch (err) {
        problems.push(problemOf(name, key, err))
      }
    }
    report.missing = (count ?? 0) - report.changed - report.unchanged
    if (options.prune === true && report.missing > 0) {
      if (rules.kind.appendOnly === true) {
        problems.push({
          collection: name,
          code: 'APPEND_ONLY',
          message: `${name} is append-only (${rules.kind.name}): the import would delete ${report.missing} record(s) it does not hold`,
        })
      } else {
        for (const key of Object.keys(await host.getAll(name))) if (!seen.has(key)) plan.deletes.push(key)
        report.deleted = plan.deletes.length
      }
    }
    try {
      checkRecordLimit(name, rules, (count ?? 0) + report.added - report.deleted)
    } catch (err) {
      problems.push(problemOf(name, undefined, err))
    }
    plans.push(plan)
  }
  if (problems.length > 0) throw importError(problems)

  if (options.dryRun !== true) {
    for (const plan of plans) await apply(host, plan, { yieldTurn, budget, signal: options.signal })
  }
  const collections = plans.map((p) => p.report)
  const sum = (f: 'added' | 'changed' | 'unchanged' | 'deleted' | 'missing'): number => collections.reduce((n, c) => n + c[f], 0)
  return {
    dryRun: options.dryRun === true,
    added: sum('added'),
    changed: sum('changed'),
    unchanged: sum('unchanged'),
    deleted: sum('deleted'),
    missing: sum('missing'),
    collections,
    ms: Math.round(performance.now() - started),
  }
}

/**
 * Write one collection's planned changes. A slice of writes is queued, then the event loop gets
 * a turn: the write queue runs the slice as one transaction in between (a microtask), and how
 * long that turn took sizes the next slice. Durability is awaited once per collection at the
 * end, and for the first slice (which loads the collection: slices queued meanwhile would
 * otherwise run as one large group).
 */
async function apply(
  host: ImportHost,
  plan: PlannedCollection,
  pacing: { yieldTurn: () => Promise<void>; budget: number; signal?: AbortSignal },
): Promise<void> {
  if (plan.configure !== undefined) await host.configure(plan.name, plan.configure)
  // The first write that failed (another writer got there between the plan and the write);
  // caught at once, so a rejection never goes unhandled while later slices are queued.
  let failure: { err: unknown } | undefined
  const pending: Promise<unknown>[] = []
  let size = MIN_SLICE
  let first = true
  const { writes, deletes } = plan
  // The writes, then the deletes, by index (not a closure per write, made all at once).
  const op = (i: number): Promise<unknown> => {
    const write = writes[i]
    return write !== undefined ? host.set(plan.name, write.key, write.value) : host.delete(plan.name, deletes[i - writes.length] as string)
  }
  const total = writes.length + deletes.length
  for (let i = 0; i < total;) {
    throwIfAborted(pacing.signal, 'the import')
    const t0 = performance.now()
    const end = Math.min(total, i + size)
    const slice: Promise<unknown>[] = []
    for (; i < end; i++) slice.push(op(i).catch((err: unknown) => (failure ??= { err })))
    if (first) {
      await Promise.all(slice)
      first = false
    } else pending.push(Promise.all(slice)) // one promise a slice kept until the end, not one a write
    if (failure !== undefined) break
    await pacing.yieldTurn()
    const took = performance.now() - t0
    if (took < pacing.budget / 2) size = Math.min(MAX_SLICE, size * 2)
    else if (took > pacing.budget) size = Math.max(MIN_SLICE, Math.floor(size / 2))
  }
  await Promise.all(pending)
  if (failure !== undefined) throw failure.err
}
