import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { JsonValue } from '../../src/core/json.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { ROWS_PER_BATCH } from '../../src/store/derived-count.js'
import { checkpointKey, type BatchOp } from '../../src/store/doc-layout.js'
import type { BinaryLevel } from '../../src/store/level.js'
import { readRows } from '../../src/store/record-rows.js'

/**
 * The rows of an adopted copy are written in slices of ROWS_PER_BATCH (store/derived-count.ts
 * rowBatches): one LevelDB batch of 100,000 rows leaves ~100 MB in the C heap of the peer that
 * joined. The first slice removes the checkpoint and the last writes it, so a failure between
 * slices leaves no checkpoint: appends write none meanwhile, and the next open builds the rows
 * anew. Real LocalWorkspace over memory-level, every batch recorded.
 */

const RECORDS = 25_000
const open: LocalWorkspace[] = []
afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

const info = { home: '', deviceId: 'device-b', workspaceId: 'ws', name: 'n', version: '0' }

/** A memory-level database whose batches are recorded; `failRowSlice`: the batch of that row slice (0-based) fails. */
function recordedDb(failRowSlice?: number): { db: BinaryLevel; batches: BatchOp[][] } {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel
  const batches: BatchOp[][] = []
  const target = db as unknown as { batch: (ops: BatchOp[], o?: object) => Promise<void> }
  const batch = target.batch.bind(target)
  let rowSlices = 0
  target.batch = (ops, o) => {
    batches.push(ops)
    if (ops.length >= ROWS_PER_BATCH && rowSlices++ === failRowSlice) return Promise.reject(new Error('injected: the disk refused this batch'))
    return batch(ops, o)
  }
  return { db, batches }
}

async function copyOf(records: number): Promise<Uint8Array> {
  const a = await LocalWorkspace.fromDatabase(recordedDb().db, { ...info, deviceId: 'device-a' })
  open.push(a)
  await Promise.all(Array.from({ length: records }, (_, i) => a.set('c', `k${i}`, { i })))
  return Y.encodeStateAsUpdate(await a.openDoc('c'))
}

const hasCheckpoint = async (db: BinaryLevel): Promise<boolean> => (await db.get(checkpointKey('c'))) !== undefined

describe('the rows of an adopted copy', () => {
  it('are written in slices, the checkpoint last; rows equal the records', async () => {
    const copy = await copyOf(RECORDS)
    const { db, batches } = recordedDb()
    const ws = await LocalWorkspace.fromDatabase(db, info)
    open.push(ws)
    expect(await ws.adopt('c', copy)).toBeDefined()
    await ws.flush()
    // From the slice that removes the checkpoint to the one that writes it.
    const isCheckpoint = (op: BatchOp, type: string): boolean => op.type === type && op.key === checkpointKey('c')
    const first = batches.findIndex((ops) => ops[0] !== undefined && isCheckpoint(ops[0], 'del') && ops.length > 1)
    expect(first).toBeGreaterThanOrEqual(0)
    const last = batches.findIndex((ops, i) => i >= first && ops.some((op) => isCheckpoint(op, 'put')))
    const slices = batches.slice(first, last + 1)
    expect(slices.length).toBeGreaterThanOrEqual(3)
    for (const ops of slices) expect(ops.length).toBeLessThanOrEqual(ROWS_PER_BATCH + 1)
    expect(slices.flat().filter((op) => op.key.startsWith('r!c!')).length).toBe(RECORDS)
    expect(slices.at(-1)?.at(-1)).toMatchObject({ type: 'put', key: checkpointKey('c') })
    const rows = await readRows(db, 'c')
    expect(rows.length).toBe(RECORDS)
    expect(Object.fromEntries(rows.map(([k, row]) => [k, row?.v as JsonValue]))).toEqual(await ws.getAll('c'))
    expect((await ws.check('c'))[0]).toMatchObject({ collection: 'c', differing: [], records: RECORDS })
  })

  it('a slice that fails leaves no checkpoint, writes after it write none, and the next open builds every row', async () => {
    const copy = await copyOf(RECORDS)
    const { db } = recordedDb(1)
    const ws = await LocalWorkspace.fromDatabase(db, info)
    expect(await ws.adopt('c', copy)).toBeDefined()
    await ws.flush()
    expect(await hasCheckpoint(db)).toBe(false)
    const partial = (await readRows(db, 'c')).length
    expect(partial).toBeGreaterThan(0)
    expect(partial).toBeLessThan(RECORDS)
    // A write after the failure: its row goes in, but no checkpoint that would claim the partial rows whole.
    await ws.set('c', 'late', { late: true })
    await ws.flush()
    expect(await hasCheckpoint(db)).toBe(false)
    await ws.close()

    await db.open()
    const again = await LocalWorkspace.fromDatabase(db, info)
    open.push(again)
    expect(await again.get('c', 'late')).toEqual({ late: true })
    await again.flush()
    expect(await hasCheckpoint(db)).toBe(true)
    const rows = await readRows(db, 'c')
    expect(rows.length).toBe(RECORDS + 1)
    expect((await again.check('c'))[0]).toMatchObject({ collection: 'c', differing: [], records: RECORDS + 1 })
  })
})
