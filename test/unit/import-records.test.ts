import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import type { KitsyncError } from '../../src/core/errors.js'
import type { ImportSource } from '../../src/core/transfer-types.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { MAX_SLICE } from '../../src/daemon/workspace-import.js'
import type { WorkspaceTransfer } from '../../src/daemon/workspace-transfer.js'
import type { BinaryLevel } from '../../src/store/level.js'

/** importRecords on a LocalWorkspace over memory-level: what it checks, reports and writes, and in what slices. */

const open: LocalWorkspace[] = []

async function workspace(): Promise<LocalWorkspace> {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' })
  const ws = await LocalWorkspace.fromDatabase(db as unknown as BinaryLevel, {
    home: '',
    deviceId: '12D3KooWimport',
    workspaceId: 'ws',
    name: 'n',
    version: '0',
  })
  open.push(ws)
  return ws
}

afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

async function rejection(p: Promise<unknown>): Promise<KitsyncError> {
  try {
    await p
  } catch (err) {
    return err as KitsyncError
  }
  throw new Error('expected a rejection')
}

describe('importRecords', () => {
  it('reports added, changed, unchanged and missing; a dry run writes nothing; --prune deletes', async () => {
    const ws = await workspace()
    await ws.set('notes', 'same', { a: 1 })
    await ws.set('notes', 'old', { a: 1 })
    await ws.set('notes', 'here-only', { a: 1 })
    const source: ImportSource = { collections: { notes: { records: { same: { a: 1 }, old: { a: 2 }, new: { b: 1 } } }, fresh: { records: { x: 1 } } } }
    const before = await ws.export()
    const dry = await ws.importRecords(source, { dryRun: true })
    expect(dry).toMatchObject({ dryRun: true, added: 2, changed: 1, unchanged: 1, deleted: 0, missing: 1 })
    expect(dry.collections.map((c) => [c.collection, c.created])).toEqual([
      ['fresh', true],
      ['notes', false],
    ])
    expect((await ws.export()).collections).toEqual(before.collections)
    expect(await ws.importRecords(source)).toMatchObject({ dryRun: false, added: 2, changed: 1, unchanged: 1, deleted: 0, missing: 1 })
    expect(await ws.getAll('notes')).toEqual({ same: { a: 1 }, old: { a: 2 }, new: { b: 1 }, 'here-only': { a: 1 } })
    expect(await ws.importRecords(source, { prune: true })).toMatchObject({ added: 0, changed: 0, unchanged: 4, deleted: 1 })
    expect(Object.keys(await ws.getAll('notes')).sort()).toEqual(['new', 'old', 'same'])
  })

  it('fails the whole import on any refused record, with its code and every problem counted', async () => {
    const ws = await workspace()
    await ws.set('issues', 'wk-1', { title: 't', tags: ['bug', 'ui'], notes: ['first'] })
    await ws.configure('templates', { limits: { maxRecords: 1 } })
    const before = await ws.export()
    const err = await rejection(
      ws.importRecords({
        collections: {
          alerts: { records: { ok: { symbol: 'BTC' }, bad: { price: 1 } } },
          issues: { records: { 'wk-1': { title: 't', tags: ['bug'], notes: ['first'] }, 'wk-2': { notes: 'not a list' } } },
          templates: { records: { a: {}, b: {} } },
          notes: { records: { fine: 1 } },
        },
      }),
    )
    expect(err.code).toBe('INVALID_RECORD')
    expect(err.details.problemCount).toBe(4)
    expect((err.details.problems as { collection: string; key?: string; code: string }[]).map((p) => [p.collection, p.key, p.code])).toEqual([
      ['alerts', 'bad', 'INVALID_RECORD'],
      ['issues', 'wk-1', 'APPEND_ONLY'],
      ['issues', 'wk-2', 'INVALID_RECORD'],
      ['templates', undefined, 'LIMIT_EXCEEDED'],
    ])
    expect((await ws.export()).collections).toEqual(before.collections)
    expect(ws.appCollectionNames().sort()).toEqual(['issues'])
  })

  it("applies a git export's settings to a new collection only", async () => {
    const ws = await workspace()
    await ws.set('kept', 'x', { a: 1 })
    const settings = { kind: 'templates', policy: 'latest_wins', limits: { maxRecords: 7 } }
    await ws.importRecords({ collections: { drafts: { settings, records: { d: { layout: 1 } } }, kept: { settings, records: { y: {} } } } })
    expect(await ws.collection('drafts')).toMatchObject({ kind: 'templates', policy: 'latest_wins', limits: { maxRecords: 7 } })
    expect(await ws.collection('kept')).toMatchObject({ kind: 'generic', policy: 'merge' })
    const err = await rejection(ws.importRecords({ collections: { other: { settings: { kind: 'spreadsheets' }, records: {} } } }))
    expect(err.code).toBe('INVALID_ARGUMENT')
  })

  it(`writes in slices of at most ${MAX_SLICE} records, giving the event loop a turn between them`, async () => {
    const ws = await workspace()
    // Records changed per transaction: the change events between two of the document's updates
    // (one update per transaction), whatever the record layout.
    const doc = await ws.openDoc('journal')
    const perTransaction: number[] = []
    let changed = 0
    ws.on('change', (e) => {
      if (e.collection === 'journal') changed++
    })
    doc.on('update', () => {
      perTransaction.push(changed)
      changed = 0
    })
    const records: Record<string, { n: number }> = {}
    for (let i = 0; i < 3000; i++) records[`e${i}`] = { n: i }
    let turns = 0
    const transfer = (ws as unknown as { transfer: WorkspaceTransfer }).transfer
    const report = await transfer.importRecords(
      { collections: { journal: { records } } },
      {},
      {
        // A budget no slice reaches: slices grow to their bound.
        budgetMs: 1e9,
        yieldTurn: () => {
          turns++
          return new Promise((resolve) => setImmediate(resolve))
        },
      },
    )
    expect(report.added).toBe(3000)
    expect(perTransaction.reduce((a, b) => a + b, 0)).toBe(3000)
    expect(Math.max(...perTransaction)).toBe(MAX_SLICE)
    expect(perTransaction.length).toBeGreaterThanOrEqual(Math.ceil(3000 / MAX_SLICE))
    expect(turns).toBeGreaterThanOrEqual(perTransaction.length - 1)
  })

  it('called from an I/O callback, lets a due timer run before it writes anything', async () => {
    const ws = await workspace()
    await ws.set('journal', 'e0', { n: 0 }) // the collection loaded: its first slice would not wait for a load
    const order: string[] = []
    ws.on('change', (e) => {
      if (e.collection === 'journal' && order.at(-1) !== 'write') order.push('write')
    })
    // In an I/O callback's continuation (poll phase), with a timer already due: one setImmediate
    // would run before the loop comes back to its timers, and a small import whole within it.
    await readFile(fileURLToPath(import.meta.url))
    setTimeout(() => order.push('timer'), 0)
    const due = performance.now() + 2
    while (performance.now() < due);
    const report = await ws.importRecords({ collections: { journal: { records: { e1: { n: 1 }, e2: { n: 2 } } } } })
    expect(report.added).toBe(2)
    expect(order).toEqual(['timer', 'write'])
  })

  it('refuses a source of the wrong shape', async () => {
    const ws = await workspace()
    for (const bad of [null, {}, { collections: [] }, { collections: { a: { records: [] } } }, { collections: { a: { records: {}, settings: 3 } } }])
      expect((await rejection(ws.importRecords(bad as unknown as ImportSource))).code).toBe('INVALID_ARGUMENT')
  })
})
