import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { UnitDocLru } from '../../dist/daemon/unit-doc-lru.js'
import type { WorkspaceUnits } from '../../dist/daemon/workspace-units.js'
import type { UnitStore } from '../../dist/store/unit-store.js'
import { closeWorkspaces, openLocal, unitEdit as change } from '../helpers/local-workspaces.js'

afterEach(closeWorkspaces)

async function units(): Promise<WorkspaceUnits> {
  return (await openLocal()).units as unknown as WorkspaceUnits
}

/**
 * The budget of open unit documents (daemon/unit-doc-lru.ts) over real units on LevelDB: a
 * document dropped past the budget is closed and loads again from the store with the same text
 * and digest; a pinned one is not dropped; a unit closed while a peer's update is applied to it
 * stays open until that write is done (WorkspaceUnits.close).
 */

const C = '_folder.notes'
const U1 = 'AAAAAAAAAAAAAAAAAAAAAA'
const U2 = 'BBBBBBBBBBBBBBBBBBBBBB'
const U3 = 'CCCCCCCCCCCCCCCCCCCCCC'

/** A unit's document as the folder engine gets it: from the LRU, else opened from the store and kept there. */
async function docOf(u: WorkspaceUnits, lru: UnitDocLru<Y.Doc>, unit: string): Promise<Y.Doc> {
  const kept = lru.get(unit)
  if (kept !== undefined) return kept
  const doc = await u.open(C, unit, () => new Y.Doc())
  lru.set(unit, doc, doc.getText('text').length)
  return doc
}

const digestMap = async (u: WorkspaceUnits): Promise<Map<string, number>> => new Map((await u.digests(C)).map((d) => [d.unit, d.digest]))

describe('open unit documents within a budget', () => {
  it('drops the least recently used past the count; the unit reloads with its text and digest', async () => {
    const u = await units()
    const dropped: string[] = []
    const lru = new UnitDocLru<Y.Doc>({ maxDocs: 2, drop: (id) => (dropped.push(id), u.close(C, id)) })
    const texts = new Map([
      [U1, 'first file\n'],
      [U2, 'second file\n'],
      [U3, 'third file\n'],
    ])
    const first = await docOf(u, lru, U1)
    await u.commit(C, [{ unit: U1, update: change(first, (t) => t.insert(0, texts.get(U1) as string)) }])
    for (const unit of [U2, U3]) {
      const doc = await docOf(u, lru, unit)
      await u.commit(C, [{ unit, update: change(doc, (t) => t.insert(0, texts.get(unit) as string)) }])
    }
    expect(dropped).toEqual([U1])
    expect(lru.keys()).toEqual([U2, U3])
    const before = await digestMap(u)
    expect(before.size).toBe(3)

    // Used again: loaded from the store into a new document, same text; now U2 is the oldest.
    const again = await docOf(u, lru, U1)
    expect(again).not.toBe(first)
    expect(again.getText('text').toString()).toBe(texts.get(U1))
    expect(dropped).toEqual([U1, U2])
    // An edit after the reload is stored, and every digest is what it was before for the others.
    await u.commit(C, [{ unit: U1, update: change(again, (t) => t.insert(t.length, 'more\n')) }])
    const after = await digestMap(u)
    expect(after.get(U2)).toBe(before.get(U2))
    expect(after.get(U3)).toBe(before.get(U3))
    expect(after.get(U1)).not.toBe(before.get(U1))
    // Dropped and reloaded once more: the digest read from the store is the same as with it open.
    lru.clear()
    for (const unit of [U1, U2]) expect((await docOf(u, lru, unit)).getText('text').toString()).toBe(unit === U1 ? 'first file\nmore\n' : texts.get(U2))
    expect(await digestMap(u)).toEqual(after)
  })

  it('reads every unit merged in slices: each as read alone, a log after its snapshot included', async () => {
    const u = await units()
    const ids = ['A1', 'A1x', 'B2', 'b3', 'Z_9', 'z-0', 'zz']
    for (const [i, unit] of ids.entries()) {
      const doc = await u.open(C, unit, () => new Y.Doc())
      for (let k = 0; k <= i; k++) await u.commit(C, [{ unit, update: change(doc, (t) => t.insert(t.length, `${unit} ${k}\n`)) }])
    }
    const store = (u as unknown as { units: UnitStore }).units
    await store.compact(C, 'b3') // one unit with its log folded into its snapshot, the others with logs
    const seen = new Map<string, Uint8Array>()
    for await (const { unit, state } of store.mergedAll(C, 2)) seen.set(unit, state)
    expect([...seen.keys()].sort()).toEqual([...ids].sort())
    for (const unit of ids) {
      const doc = new Y.Doc()
      Y.applyUpdate(doc, seen.get(unit) as Uint8Array)
      expect(doc.getText('text').toString()).toBe(
        ids
          .slice(0, ids.indexOf(unit) + 1)
          .map((_, k) => `${unit} ${k}\n`)
          .join(''),
      )
    }
  })

  it('drops by bytes too, keeping the document just added', () => {
    const dropped: string[] = []
    const lru = new UnitDocLru<string>({ maxDocs: 100, maxBytes: 100, drop: (id) => dropped.push(id) })
    lru.set('a', 'A', 60)
    lru.set('b', 'B', 30)
    expect(dropped).toEqual([])
    lru.grow('b', 20) // 110 bytes: the oldest goes
    expect(dropped).toEqual(['a'])
    lru.set('c', 'C', 500) // alone over the budget: kept, every other goes
    expect(dropped).toEqual(['a', 'b'])
    expect(lru.keys()).toEqual(['c'])
    expect(lru.bytes).toBe(500)
  })

  it('does not drop a pinned document; it goes once unpinned', () => {
    const dropped: string[] = []
    const lru = new UnitDocLru<string>({ maxDocs: 1, drop: (id) => dropped.push(id) })
    lru.set('a', 'A', 1)
    const unpin = lru.pin('a')
    lru.set('b', 'B', 1)
    lru.set('c', 'C', 1)
    // 'a' is in use: over the count, 'b' (not pinned) went instead.
    expect(dropped).toEqual(['b'])
    expect(lru.peek('a')).toBe('A')
    unpin()
    unpin() // once only
    expect(dropped).toEqual(['b', 'a'])
    expect(lru.keys()).toEqual(['c'])
  })

  it('keeps a unit open while a peer update is applied to it; closed after', async () => {
    const u = await units()
    const doc = await u.open(C, U1, () => new Y.Doc())
    await u.commit(C, [{ unit: U1, update: change(doc, (t) => t.insert(0, 'line one\n')) }])
    // A peer's edit made on a copy of the stored state.
    const peer = new Y.Doc()
    Y.applyUpdate(peer, Y.encodeStateAsUpdate(doc))
    const update = change(peer, (t) => t.insert(t.length, 'line two\n'))

    const applied = u.applyRemote(C, U1, update, 'peer-a')
    u.close(C, U1) // the LRU lets it go while the write is under way
    // Whoever opens it meanwhile gets the document in use, not a load that may miss the update.
    const during = await u.open(C, U1, () => new Y.Doc())
    expect(during).toBe(doc)
    expect(await applied).toBe(true)
    expect(doc.getText('text').toString()).toBe('line one\nline two\n')

    // Not in use now: a close lets it go, and the next open loads the stored state with the update.
    const second = u.applyRemote(
      C,
      U1,
      change(peer, (t) => t.insert(0, '# ')),
      'peer-a',
    )
    u.close(C, U1)
    expect(await second).toBe(true)
    await new Promise((r) => setImmediate(r)) // the write's bookkeeping ends after its caller resumes
    const reloaded = await u.open(C, U1, () => new Y.Doc())
    expect(reloaded).not.toBe(doc)
    expect(reloaded.getText('text').toString()).toBe('# line one\nline two\n')
    expect(doc.getText('text').toString()).toBe('# line one\nline two\n')
  })
})
