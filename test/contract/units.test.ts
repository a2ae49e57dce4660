import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import type { BatchOp } from '../../dist/store/doc-layout.js'
import { UNIT_COMPACT_ENTRIES } from '../../dist/store/unit-store.js'
import { makeHome } from '../helpers/cli.js'
import { closeLocal, closeWorkspaces, openLocal as workspace, unitEdit as change } from '../helpers/local-workspaces.js'

afterEach(closeWorkspaces)

async function reopen(ws: LocalWorkspace, home: string): Promise<LocalWorkspace> {
  await closeLocal(ws)
  return workspace(home)
}

/**
 * Units (core/unit-types.ts) on a real LevelDB in a temporary home: open, commit, list, drop and
 * close; the same documents after a reopen; a commit's units and manifest records in one batch;
 * a unit's log folded into its snapshot.
 */

const C = '_folder.notes'
const U1 = 'AAAAAAAAAAAAAAAAAAAAAA'
const U2 = 'BBBBBBBBBBBBBBBBBBBBBB'

async function record(ws: LocalWorkspace, key: string): Promise<unknown> {
  const registry = (ws as unknown as { registry: { load(n: string): Promise<{ collection: { get(k: string): unknown } }> } }).registry
  return (await registry.load(C)).collection.get(key)
}

describe('units on LevelDB', () => {
  it('open, commit, list, drop and close; a reopen gives the same documents and records', async () => {
    const home = await makeHome()
    let ws = await workspace(home)
    const doc1 = await ws.units.open(C, U1, () => new Y.Doc())
    expect(await ws.units.open(C, U1, () => new Y.Doc())).toBe(doc1)
    const u1 = change(doc1, (t) => t.insert(0, 'first file\n'))
    await ws.units.commit(C, [{ unit: U1, update: u1 }], [{ key: U1, fields: { path: 'a.txt', kind: 'text' } }])
    const doc2 = await ws.units.open(C, U2, () => new Y.Doc())
    await ws.units.commit(C, [{ unit: U2, update: change(doc2, (t) => t.insert(0, 'second\n')) }])
    await ws.units.commit(C, [{ unit: U1, update: change(doc1, (t) => t.insert(t.length, 'more\n')) }], [{ key: U1, fields: { size: 16 } }])
    expect((await ws.units.list(C)).sort()).toEqual([U1, U2])
    // Closed, a unit loads again from the store into a new document made by the caller's factory.
    ws.units.close(C, U1)
    let made = 0
    const again = await ws.units.open(C, U1, () => (made++, new Y.Doc()))
    expect(made).toBe(1)
    expect(again).not.toBe(doc1)
    expect(again.getText('text').toString()).toBe('first file\nmore\n')
    // Fields merge into the record.
    expect(await record(ws, U1)).toEqual({ path: 'a.txt', kind: 'text', size: 16 })

    ws = await reopen(ws, home)
    expect((await ws.units.list(C)).sort()).toEqual([U1, U2])
    expect((await ws.units.open(C, U1, () => new Y.Doc())).getText('text').toString()).toBe('first file\nmore\n')
    expect((await ws.units.open(C, U2, () => new Y.Doc())).getText('text').toString()).toBe('second\n')
    expect(await record(ws, U1)).toEqual({ path: 'a.txt', kind: 'text', size: 16 })

    await ws.units.drop(C, U2)
    await ws.units.commit(C, [], [{ key: U1, fields: null }])
    expect(await ws.units.list(C)).toEqual([U1])
    expect(await record(ws, U1)).toBeUndefined()
    ws = await reopen(ws, home)
    expect(await ws.units.list(C)).toEqual([U1])
    expect((await ws.units.open(C, U2, () => new Y.Doc())).getText('text').toString()).toBe('')
    // Another collection's units are its own.
    expect(await ws.units.list('_folder.other')).toEqual([])
  })

  it('writes a commit of units and manifest records in one LevelDB batch', async () => {
    const ws = await workspace(await makeHome())
    // The collection exists before (its first batch would also hold its metadata).
    await ws.units.commit(C, [], [{ key: 'x', fields: { path: 'x' } }])
    const batches: BatchOp[][] = []
    const batch = ws.store.batch.bind(ws.store)
    ws.store.batch = (ops, options) => {
      batches.push(ops)
      return batch(ops, options)
    }
    const d1 = await ws.units.open(C, U1, () => new Y.Doc())
    const d2 = await ws.units.open(C, U2, () => new Y.Doc())
    await ws.units.commit(
      C,
      [
        { unit: U1, update: change(d1, (t) => t.insert(0, 'one')) },
        { unit: U2, update: change(d2, (t) => t.insert(0, 'two')) },
      ],
      [
        { key: U1, fields: { path: 'one.txt' } },
        { key: U2, fields: { path: 'two.txt' } },
      ],
    )
    const withUnits = batches.filter((ops) => ops.some((op) => op.key.startsWith('w!')))
    expect(withUnits).toHaveLength(1)
    const keys = (withUnits[0] as BatchOp[]).map((op) => op.key)
    // Both units' updates and the collection's update (which holds both records) in the same batch.
    expect(keys.filter((k) => k.startsWith(`w!${C}!${U1}!`))).toHaveLength(1)
    expect(keys.filter((k) => k.startsWith(`w!${C}!${U2}!`))).toHaveLength(1)
    expect(keys.filter((k) => k.startsWith(`u!${C}!`))).toHaveLength(1)
    expect(await record(ws, U2)).toEqual({ path: 'two.txt' })
  })

  it('folds a long unit log into its snapshot, keeping every edit', async () => {
    const home = await makeHome()
    let ws = await workspace(home)
    const doc = await ws.units.open(C, U1, () => new Y.Doc())
    const edits = UNIT_COMPACT_ENTRIES * 2 + 5
    for (let i = 0; i < edits; i++) await ws.units.commit(C, [{ unit: U1, update: change(doc, (t) => t.insert(t.length, `line ${i}\n`)) }])
    const expected = doc.getText('text').toString()
    const logKeys = async (): Promise<number> => {
      let n = 0
      for await (const _ of ws.store.db.keys({ gte: `w!${C}!${U1}!`, lt: `w!${C}!${U1}"` })) n++
      return n
    }
    // Compactions run behind the commits: wait for the last to land.
    for (let i = 0; i < 100 && (await logKeys()) >= UNIT_COMPACT_ENTRIES; i++) await new Promise((r) => setTimeout(r, 20))
    expect(await logKeys()).toBeLessThan(UNIT_COMPACT_ENTRIES)
    ws = await reopen(ws, home)
    expect((await ws.units.open(C, U1, () => new Y.Doc())).getText('text').toString()).toBe(expected)
  })

  it("a peer's update stored while the unit is being opened reaches the opened document", async () => {
    const ws = await workspace(await makeHome())
    const source = new Y.Doc()
    const update = change(source, (t) => t.insert(0, 'from a peer'))
    const seen: string[] = []
    ws.units.on('unit:update', (e) => seen.push(`${e.unit} ${e.from}`))
    // The update is applied to a scratch copy (the unit is not open), and the open starts meanwhile:
    // its load reads the store before the update is in it.
    let opened: Promise<Y.Doc> | undefined
    let stored!: () => void
    const written = new Promise<void>((resolve) => (stored = resolve))
    const batch = ws.store.batch.bind(ws.store)
    ws.store.batch = async (ops, options) => {
      await batch(ops, options)
      if (ops.some((op) => op.key.startsWith(`w!${C}!${U1}!`))) stored()
    }
    const read = ws.store.units.read.bind(ws.store.units)
    let reads = 0
    ws.store.units.read = async (name, unit) => {
      const n = ++reads
      const updates = await read(name, unit)
      if (n === 1) opened = ws.units.open(C, U1, () => new Y.Doc())
      else await written // the open's load: it read the store before the update was written, and ends after
      return updates
    }
    const applied = ws.units.applyRemote(C, U1, update, 'peer-a')
    expect(await applied).toBe(true)
    if (opened === undefined) throw new Error('the open did not start during the apply')
    expect((await opened).getText('text').toString()).toBe('from a peer')
    expect(seen).toEqual([`${U1} peer-a`])
    // The same update again changes nothing: not stored twice, no event.
    expect(await ws.units.applyRemote(C, U1, update, 'peer-b')).toBe(false)
    expect(seen).toHaveLength(1)
  })

  it('a load that a compaction of the unit lands in the middle of still holds every update', async () => {
    const ws = await workspace(await makeHome())
    const doc = await ws.units.open(C, U1, () => new Y.Doc())
    for (let i = 0; i < 5; i++) await ws.units.commit(C, [{ unit: U1, update: change(doc, (t) => t.insert(t.length, `${i} `)) }])
    ws.units.close(C, U1)
    // The compaction runs between the load's two reads (of the log and of the snapshot), in whichever order they come.
    const db = ws.store.db as unknown as { get(key: string): Promise<Uint8Array | undefined>; iterator(range: { gte?: string }): unknown }
    const get = db.get.bind(db)
    const iterator = db.iterator.bind(db)
    let logRead = false
    db.iterator = (range) => {
      if (range.gte === `w!${C}!${U1}!`) logRead = true
      return iterator(range)
    }
    let compacted = false
    db.get = async (key: string) => {
      if (key !== `y!${C}!${U1}` || compacted) return get(key)
      compacted = true
      db.get = get
      db.iterator = iterator
      if (logRead) {
        await ws.store.units.compact(C, U1)
        return get(key)
      }
      const value = await get(key)
      await ws.store.units.compact(C, U1)
      return value
    }
    const loaded = await ws.units.open(C, U1, () => new Y.Doc())
    expect(compacted).toBe(true)
    expect(loaded.getText('text').toString()).toBe('0 1 2 3 4 ')
  })

  it('refuses bad ids and hashes with INVALID_NAME and INVALID_ARGUMENT, storing nothing', async () => {
    const ws = await workspace(await makeHome())
    await expect(ws.units.open(C, '../x', () => new Y.Doc())).rejects.toMatchObject({ code: 'INVALID_NAME' })
    await expect(ws.units.commit('bad!name', [])).rejects.toMatchObject({ code: 'INVALID_NAME' })
    await expect(ws.units.commit(C, [{ unit: 'a!b', update: new Uint8Array([0, 0]) }])).rejects.toMatchObject({ code: 'INVALID_NAME' })
    await expect(ws.units.putBlob('ABC', new Uint8Array(1))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(await ws.units.list(C)).toEqual([])
  })
})
