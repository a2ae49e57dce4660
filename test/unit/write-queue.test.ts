import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { KitsyncError } from '../../src/core/errors.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { MAX_GROUP, WriteQueue } from '../../src/daemon/write-queue.js'
import type { BinaryLevel } from '../../src/store/level.js'

/**
 * Group commit of local writes: writes issued together share a transaction, yet each is
 * checked against what the writes before it left, fails on its own, and runs in call order.
 */

const open: LocalWorkspace[] = []

async function workspace(): Promise<LocalWorkspace> {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' })
  const ws = await LocalWorkspace.fromDatabase(db as unknown as BinaryLevel, {
    home: '',
    deviceId: '12D3KooWqueuetest',
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

/** Counts the updates (transactions that changed something) of a collection from now on. */
async function countUpdates(ws: LocalWorkspace, collection: string): Promise<{ updates: number }> {
  await ws.set(collection, 'first', 0)
  const doc = await ws.openDoc(collection)
  const counter = { updates: 0 }
  doc.on('update', () => counter.updates++)
  return counter
}

describe('write queue (group commit)', () => {
  it('un-awaited sets share transactions of at most MAX_GROUP writes; each one lands, in call order', async () => {
    const ws = await workspace()
    const counter = await countUpdates(ws, 'c')
    const n = 2 * MAX_GROUP + 10
    const writes: Promise<void>[] = []
    for (let i = 0; i < n; i++) writes.push(ws.set('c', `k${i % 50}`, { i }))
    await Promise.all(writes)
    expect(counter.updates).toBe(3)
    // Each key holds the value of its last write in call order.
    for (let k = 0; k < 50; k++) {
      const last = n - 1 - ((n - 1 - k) % 50)
      expect(await ws.get('c', `k${k}`)).toEqual({ i: last })
    }
    // One at a time: one transaction each.
    await ws.set('c', 'a', 1)
    await ws.set('c', 'b', 2)
    expect(counter.updates).toBe(5)
  })

  it('a refused write fails alone; the others of its group land', async () => {
    const ws = await workspace()
    await ws.configure('c', { kind: 'alerts' })
    const results = await Promise.allSettled([
      ws.set('c', 'a', { symbol: 'AAPL', price: 1 }),
      ws.set('c', 'bad', { price: 2 }),
      ws.set('c', 'b', { symbol: 'MSFT' }),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(((results[1] as PromiseRejectedResult).reason as KitsyncError).code).toBe('INVALID_RECORD')
    expect(await ws.getAll('c')).toEqual({ a: { price: 1, symbol: 'AAPL' }, b: { symbol: 'MSFT' } })
  })

  it('a limit holds inside one group: writes past it are refused, the ones before it land', async () => {
    const ws = await workspace()
    await ws.configure('t', { kind: 'templates', limits: { maxRecords: 5 } })
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => ws.set('t', `t${i}`, { i })))
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected'])
    expect(((results[5] as PromiseRejectedResult).reason as KitsyncError).code).toBe('LIMIT_EXCEEDED')
    expect((await ws.list()).find((c) => c.name === 't')?.records).toBe(5)
  })

  it('a write sees the writes queued before it: field writes add up, append-only refuses a second write', async () => {
    const ws = await workspace()
    await Promise.all([ws.set('c', 'r', { a: 1 }), ws.set('c', 'r', 2, { field: 'b' }), ws.set('c', 'r', 3, { field: 'c' })])
    expect(await ws.get('c', 'r')).toEqual({ a: 1, b: 2, c: 3 })
    // A whole write after field writes in the same group replaces them.
    await Promise.all([ws.set('c', 's', 1, { field: 'x' }), ws.set('c', 's', { y: 2 })])
    expect(await ws.get('c', 's')).toEqual({ y: 2 })
    await ws.configure('j', { kind: 'journal' })
    const results = await Promise.allSettled([ws.set('j', 'e', { text: 'one' }), ws.set('j', 'e', { text: 'two' })])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected'])
    expect(await ws.get('j', 'e')).toEqual({ text: 'one' })
  })

  it('writes to different collections keep their order; close() waits for queued writes', async () => {
    const ws = await workspace()
    const order: string[] = []
    ws.on('change', (e) => order.push(`${e.collection}/${e.key}`))
    const writes = [ws.set('a', '1', 1), ws.set('b', '2', 2), ws.set('a', '3', 3), ws.delete('a', '1')]
    const closing = ws.close()
    await Promise.all(writes)
    await closing
    expect(order).toEqual(['a/1', 'b/2', 'a/3', 'a/1'])
    await expect(ws.set('a', 'x', 1)).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' })
  })

  it('a transaction that throws fails every write of its group', async () => {
    const queue = new WriteQueue<string>({
      ready: (name) => name,
      load: async (name) => name,
      commit: () => {
        throw new Error('observer failed')
      },
    })
    const results = await Promise.allSettled([queue.push('x', false, () => 1), queue.push('x', false, () => 2)])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
  })
})

describe('RecordCollection inside a larger transaction', () => {
  it('reads see the writes made before them in the same transaction', () => {
    const doc = new Y.Doc()
    const c = new RecordCollection('c', doc)
    doc.transact(() => {
      c.set('k', 1, 'L', 'a')
      expect(c.get('k')).toEqual({ a: 1 })
      expect(c.has('k')).toBe(true)
      c.set('k', { b: 2 }, 'L')
      expect(c.get('k')).toEqual({ b: 2 })
      c.delete('k', 'L')
      expect(c.has('k')).toBe(false)
      c.set('n', { x: 1 }, 'L')
      expect(c.size).toBe(1)
    })
    expect(c.entries()).toEqual({ n: { x: 1 } })
    expect(c.keys()).toEqual(['n'])
  })
})
