import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import { DAY_MS } from '../../src/core/history-types.js'
import { nodeTagOf } from '../../src/core/hlc.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { BinaryLevel } from '../../src/store/level.js'

const open: LocalWorkspace[] = []

async function device(start = 1_800_000_000_000): Promise<{ ws: LocalWorkspace; time: { now: number }; db: BinaryLevel }> {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel
  const time = { now: start }
  const ws = await LocalWorkspace.fromDatabase(
    db,
    { home: '', deviceId: '12D3KooWHistoryDevA1', workspaceId: 'ws', name: 'n', version: '0' },
    { now: () => time.now },
  )
  open.push(ws)
  return { ws, time, db }
}

afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code })
}

describe('workspace history and restore', () => {
  it('lists versions newest first with what each changed, and restores one as a new write', async () => {
    const { ws, time } = await device()
    await ws.set('notes', 'k', { title: 'one', n: 1 })
    time.now += 1000
    await ws.set('notes', 'k', { title: 'two', n: 1 })
    time.now += 1000
    await ws.set('notes', 'k', { title: 'two', n: 2 })
    const versions = await ws.history('notes', 'k')
    expect(versions.map((v) => v.value)).toEqual([
      { n: 2, title: 'two' },
      { n: 1, title: 'two' },
      { n: 1, title: 'one' },
    ])
    // Whole writes: the fields that differ from the version before.
    expect(versions.map((v) => v.fields)).toEqual([['n'], ['title'], ['n', 'title']])
    expect(versions[2]).toMatchObject({ collection: 'notes', key: 'k', deviceTag: nodeTagOf('12D3KooWHistoryDevA1'), deleted: false, time: 1_800_000_000_000 })
    expect(await ws.history('notes', 'k', { limit: 1 })).toHaveLength(1)
    // The limit's last whole write still knows what it changed (the version past it is read too).
    expect((await ws.history('notes', 'k', { limit: 1 }))[0]?.fields).toEqual(['n'])

    time.now += 1000
    const r = await ws.restore('notes', 'k', { version: versions[2]?.stamp as string })
    expect(await ws.get('notes', 'k')).toEqual({ title: 'one', n: 1 })
    expect(r.restored.stamp).toBe(versions[2]?.stamp)
    expect(r.stamp > (versions[0]?.stamp as string)).toBe(true)
    // The restore is a version of its own, the newest.
    const after = await ws.history('notes', 'k')
    expect(after).toHaveLength(4)
    expect(after[0]).toMatchObject({ stamp: r.stamp, value: { title: 'one', n: 1 } })
  })

  it('restores the version current at a time, and a delete version deletes', async () => {
    const { ws, time } = await device()
    const t0 = time.now
    await ws.set('notes', 'k', 'first')
    time.now += 60_000
    await ws.delete('notes', 'k')
    time.now += 60_000
    await ws.set('notes', 'k', 'third')
    await ws.restore('notes', 'k', { at: t0 + 30_000 })
    expect(await ws.get('notes', 'k')).toBe('first')
    await ws.restore('notes', 'k', { at: new Date(t0 + 90_000).toISOString() })
    expect(await ws.get('notes', 'k')).toBeUndefined()
    const versions = await ws.history('notes', 'k')
    expect(versions.map((v) => (v.deleted ? '(deleted)' : v.value))).toEqual(['(deleted)', 'first', 'third', '(deleted)', 'first'])
  })

  it('refuses unknown collections, records and versions with codes', async () => {
    const { ws } = await device()
    await ws.set('notes', 'k', 1)
    await rejects(ws.history('nope', 'k'), 'UNKNOWN_COLLECTION')
    await rejects(ws.history('notes', 'missing'), 'NOT_FOUND')
    await rejects(ws.restore('notes', 'k', { version: '0000000zz.0000.nobody' }), 'NOT_FOUND')
    await rejects(ws.restore('notes', 'k', { at: 1000 }), 'NOT_FOUND')
    await rejects(ws.restore('notes', 'k', {}), 'INVALID_ARGUMENT')
    await rejects(ws.history('notes', 'k', { since: 'yesterday' }), 'INVALID_ARGUMENT')
    expect(await ws.get('notes', 'k')).toBe(1)
  })

  it('lists a collection’s changes since a time', async () => {
    const { ws, time } = await device()
    await ws.set('notes', 'a', 1)
    time.now += 3 * 3_600_000
    await ws.set('notes', 'b', 2)
    time.now += 60_000
    await ws.set('notes', 'a', 3)
    const recent = await ws.history('notes', undefined, { since: '2h' })
    expect(recent.map((c) => [c.key, c.value])).toEqual([
      ['a', 3],
      ['b', 2],
    ])
    expect(await ws.history('notes', undefined, { since: 0 })).toHaveLength(3)
  })

  it('prunes a collection with more records written than it keeps track of in one walk', async () => {
    const { ws } = await device()
    await ws.configure('notes', { history: { count: 1 } })
    for (let i = 0; i < 3; i++) await ws.set('notes', 'k', { i })
    // An import: more records than the pruner notes one by one (10,000).
    await Promise.all(Array.from({ length: 10_001 }, (_, i) => ws.set('notes', `r${i}`, i)))
    await (ws as unknown as { historyDesk: { pruneNow(full: boolean): Promise<void> } }).historyDesk.pruneNow(false)
    expect((await ws.history('notes', 'k')).map((v) => v.value)).toEqual([{ i: 2 }])
    expect(await ws.history('notes', undefined, { since: 0, limit: 20_000 })).toHaveLength(10_002)
  })

  it('prunes by the synced retention: count, days (injected clock) and off; the live version stays', async () => {
    const { ws, time } = await device()
    const view = await ws.configure('notes', { history: { count: 3 } })
    expect(view.history).toEqual({ off: false, count: 3, days: 90 })
    for (let i = 0; i < 8; i++) {
      await ws.set('notes', 'k', { i })
      time.now += 1000
    }
    await ws.set('notes', 'still', 'old')
    await (ws as unknown as { historyDesk: { pruneNow(): Promise<void> } }).historyDesk.pruneNow()
    expect((await ws.history('notes', 'k')).map((v) => v.value)).toEqual([{ i: 7 }, { i: 6 }, { i: 5 }])

    await ws.configure('notes', { history: { days: 2 } })
    time.now += 1 * DAY_MS
    await ws.set('notes', 'k', { i: 8 })
    time.now += 2 * DAY_MS
    await (ws as unknown as { historyDesk: { pruneNow(): Promise<void> } }).historyDesk.pruneNow()
    // Older than 2 days: gone, but the newest of each record stays however old.
    expect((await ws.history('notes', 'k')).map((v) => v.value)).toEqual([{ i: 8 }])
    expect((await ws.history('notes', 'still')).map((v) => v.value)).toEqual(['old'])

    await ws.configure('notes', { history: 'off' })
    await ws.set('notes', 'k', { i: 9 })
    await (ws as unknown as { historyDesk: { pruneNow(): Promise<void> } }).historyDesk.pruneNow()
    expect(await ws.history('notes', undefined, { since: 0 })).toEqual([])
    // With no entries, a record's history is its current version.
    expect((await ws.history('notes', 'k')).map((v) => v.value)).toEqual([{ i: 9 }])
    await ws.configure('notes', { history: null })
    expect((await ws.collection('notes')).history).toEqual({ off: false, count: 100, days: 90 })
  })
})
