import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { BatchOp } from '../../src/store/doc-layout.js'
import type { BinaryLevel } from '../../src/store/level.js'

/**
 * The rows of an adopted copy (a new device's catch-up) are derived a turn after the copy is
 * stored (daemon/collection-registry.ts): deriving 10,000 records' rows holds the event loop
 * some 250 ms, and what waited on the copy (the join's caught-up, the app's first read) used
 * to run only after it. Real LocalWorkspace over memory-level, every batch recorded.
 */

const RECORDS = 2_000
const open: LocalWorkspace[] = []
afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

const info = { home: '', deviceId: 'device-b', workspaceId: 'ws', name: 'n', version: '0' }

describe('the rows of an adopted copy', () => {
  it('are derived a turn after the copy is stored, not in the same turn', async () => {
    const a = await LocalWorkspace.fromDatabase(new MemoryLevel({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel, {
      ...info,
      deviceId: 'a',
    })
    open.push(a)
    await Promise.all(Array.from({ length: RECORDS }, (_, i) => a.set('c', `k${i}`, { i })))
    const copy = Y.encodeStateAsUpdate(await a.openDoc('c'))

    const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel
    const target = db as unknown as { batch: (ops: BatchOp[], o?: object) => Promise<void> }
    const batch = target.batch.bind(target)
    const order: string[] = []
    target.batch = (ops, o) => {
      const rows = ops.filter((op) => op.key.startsWith('r!c!')).length
      if (rows > 0) {
        order.push('rows')
        return batch(ops, o)
      }
      // Once the batch that stores the copy is done, a turn of the event loop is queued: it
      // must come before the rows are derived and written.
      const copyStored = ops.some((op) => op.type === 'put' && !op.key.startsWith('r!') && op.value !== undefined && op.value.byteLength >= copy.byteLength / 2)
      return batch(ops, o).then(() => {
        if (copyStored) setImmediate(() => order.push('turn'))
      })
    }
    const ws = await LocalWorkspace.fromDatabase(db, info)
    open.push(ws)
    expect(await ws.adopt('c', copy)).toBeDefined()
    await ws.flush()
    await new Promise((resolve) => setImmediate(resolve))
    expect(order[0]).toBe('turn')
    expect(order).toContain('rows')
    expect(Object.keys(await ws.getAll('c'))).toHaveLength(RECORDS)
  })
})
