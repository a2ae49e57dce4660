import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { ChangeEvent } from '../../src/core/workspace-types.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { BinaryLevel } from '../../src/store/level.js'

/**
 * A new device takes a collection it does not hold from a peer's copy (LocalWorkspace.adopt,
 * called by the sync engine): the copy is stored as it came, announced as change events, and
 * the device's clock moves past its stamps.
 */

const open: LocalWorkspace[] = []

async function device(id: string, now: () => number): Promise<LocalWorkspace> {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' })
  const ws = await LocalWorkspace.fromDatabase(
    db as unknown as BinaryLevel,
    { home: '', deviceId: `12D3KooW${id}`, workspaceId: 'ws', name: 'n', version: '0' },
    { now },
  )
  open.push(ws)
  return ws
}

afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

describe('adopting a collection from a peer', () => {
  it('stores the copy, emits a change per record, and later writes here win by clock', async () => {
    const t = 1_800_000_000_000
    // A's clock is an hour ahead of B's.
    const a = await device('aaaaaaaa', () => t + 3_600_000)
    const b = await device('bbbbbbbb', () => t)
    await a.set('c', 'r1', { v: 'a' })
    await a.set('c', 'r2', { v: 'a2' })
    const events: ChangeEvent[] = []
    b.on('change', (e) => events.push(e))
    const copy = Y.encodeStateAsUpdate(await a.openDoc('c'))
    const doc = await b.adopt('c', copy)
    expect(doc).toBeDefined()
    expect(events.map((e) => [e.key, e.op, e.source])).toEqual([
      ['r1', 'set', 'remote'],
      ['r2', 'set', 'remote'],
    ])
    expect(await b.getAll('c')).toEqual({ r1: { v: 'a' }, r2: { v: 'a2' } })
    // Held now: a second copy is applied as usual, not adopted.
    expect(await b.adopt('c', copy)).toBeUndefined()
    await b.flush()
    expect((await b.storageStats('c')).bytes).toBeGreaterThan(copy.byteLength)
    // B's wall clock is behind A's stamps, yet B's write is the newer one.
    await b.set('c', 'r1', { v: 'b' })
    Y.applyUpdate(await a.openDoc('c'), Y.encodeStateAsUpdate(await b.openDoc('c')))
    expect(await a.get('c', 'r1')).toEqual({ v: 'b' })
  })

  it('a malformed copy is refused with PROTOCOL_ERROR and leaves no collection behind', async () => {
    const b = await device('bbbbbbbb', Date.now)
    await expect(b.adopt('d', new Uint8Array([1, 2, 3, 250, 7]))).rejects.toMatchObject({ code: 'PROTOCOL_ERROR' })
    expect(b.collectionNames()).not.toContain('d')
    await b.set('d', 'k', 1)
    expect(await b.get('d', 'k')).toBe(1)
  })
})
