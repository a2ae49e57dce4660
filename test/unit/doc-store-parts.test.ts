import { describe, expect, it } from 'vitest'
import { isKitsyncError } from '../../src/core/errors.js'
import { storeAdopted, type AdoptionStore } from '../../src/store/adoption.js'
import { fileRefOf, META_RANGE, metaKey, seqOf, snapshotKey, storedFile, updateKey, updateRange, type BatchOp } from '../../src/store/doc-layout.js'
import { frame, unframe } from '../../src/store/framing.js'
import { damageOr, isLevelCorruption, isLevelIoError, readFailure } from '../../src/store/level-errors.js'
import type { SnapshotFiles, SnapshotFileWrite } from '../../src/store/snapshot-files.js'

/**
 * The parts of the document store that stand alone: its key layout and value codecs (the
 * storage format, doc-layout.ts), its LevelDB error mapping (level-errors.ts), and the writes
 * of an adopted copy (adoption.ts), on a fake store.
 */

const inRange = (key: string, range: { gte: string; lt: string }): boolean => key >= range.gte && key < range.lt

describe('doc-layout', () => {
  it('keeps the stored key format: 16 hex digits of sequence, ordered as numbers', () => {
    expect(updateKey('c', 255)).toBe('u!c!00000000000000ff')
    expect(metaKey('c')).toBe('m!c')
    expect(snapshotKey('c')).toBe('s!c')
    const keys = [0, 9, 15, 16, 255, 4096, 2 ** 40].map((seq) => updateKey('c', seq))
    expect([...keys].sort()).toEqual(keys)
    for (const seq of [0, 15, 2 ** 40]) expect(seqOf('c', updateKey('c', seq))).toBe(seq)
  })

  it("ranges hold one collection's keys only, not those of a name it prefixes", () => {
    const range = updateRange('c')
    expect(inRange(updateKey('c', 0), range)).toBe(true)
    expect(inRange(updateKey('c', 2 ** 52), range)).toBe(true)
    expect(inRange(updateKey('c2', 0), range)).toBe(false)
    expect(inRange(updateKey('b', 0), range)).toBe(false)
    const meta = { gte: META_RANGE.gte, lt: META_RANGE.lt }
    expect(inRange(metaKey('any.name_1'), meta)).toBe(true)
    expect(inRange(snapshotKey('c'), meta)).toBe(false)
    expect(inRange('l!revoked', meta)).toBe(false)
  })

  it('reads back a snapshot file reference, and no reference from anything else', () => {
    const ref = { file: 'c.0123456789ab.snap', bytes: 5_000_000, crc: 0xdeadbeef }
    const stored = storedFile(ref)
    expect(fileRefOf(stored.value)).toEqual(ref)
    expect(stored.bytes).toBe(ref.bytes + 5)
    expect(fileRefOf(frame(new TextEncoder().encode(JSON.stringify(ref))))).toBeUndefined()
    const damaged = stored.value.slice()
    const at = damaged.length - 2
    damaged[at] = (damaged[at] ?? 0) ^ 1
    expect(fileRefOf(damaged)).toBeUndefined()
    expect(unframe(stored.value)).toBeUndefined()
  })
})

describe('level-errors', () => {
  const corrupt = Object.assign(new Error('Corruption: bad block type'), { code: 'LEVEL_CORRUPTION' })
  const io = Object.assign(new Error('write failed'), { cause: { code: 'LEVEL_IO_ERROR' } })

  it("tells LevelDB's damage and I/O errors apart, by code, cause or message", () => {
    expect(isLevelCorruption(corrupt)).toBe(true)
    expect(isLevelCorruption({ cause: { code: 'LEVEL_CORRUPTION' } })).toBe(true)
    expect(isLevelCorruption(new Error('Corruption: checksum mismatch'))).toBe(true)
    expect(isLevelCorruption(io)).toBe(false)
    expect(isLevelIoError(io)).toBe(true)
    expect(isLevelIoError({ code: 'LEVEL_IO_ERROR' })).toBe(true)
    expect(isLevelIoError(corrupt)).toBe(false)
  })

  it('maps a failed read to DATA_CORRUPTION or STORAGE_FAILED naming the collection', () => {
    const damaged = readFailure('notes', corrupt)
    expect(isKitsyncError(damaged, 'DATA_CORRUPTION')).toBe(true)
    expect(damaged.details.collection).toBe('notes')
    expect(damaged.message).toContain('Corruption: bad block type')
    const failed = readFailure('notes', io)
    expect(isKitsyncError(failed, 'STORAGE_FAILED')).toBe(true)
    expect(failed.message).toBe('collection notes: cannot read the store: write failed')
    expect(isKitsyncError(damageOr('notes', corrupt), 'DATA_CORRUPTION')).toBe(true)
    expect(damageOr('notes', io)).toBe(io)
  })
})

describe('storeAdopted', () => {
  function fakeStore(): { store: AdoptionStore; batches: BatchOp[][]; removed: string[] } {
    const batches: BatchOp[][] = []
    const removed: string[] = []
    const files = { remove: async (file: string) => void removed.push(file) } as unknown as SnapshotFiles
    return { store: { files, batch: async (ops) => void batches.push(ops) }, batches, removed }
  }
  const meta: BatchOp[] = [{ type: 'put', key: metaKey('c'), value: new Uint8Array([1]) }]
  const update = new Uint8Array([7, 7, 7])
  const fileWrite = (): SnapshotFileWrite => ({ ref: { file: 'c.1.snap', bytes: 3, crc: 1 }, done: Promise.resolve() })

  it('writes the metadata only after the copy is kept', async () => {
    const { store, batches } = fakeStore()
    const snap = await storeAdopted(store, 'c', { update, kept: Promise.resolve(true), file: undefined }, meta)
    expect(batches.map((ops) => ops.map((op) => `${op.type} ${op.key}`))).toEqual([['put s!c'], ['put m!c']])
    expect(unframe(snap.value)).toEqual(update)
  })

  it('removes what it wrote of a copy not kept, and never writes the metadata', async () => {
    const { store, batches } = fakeStore()
    const err = await storeAdopted(store, 'c', { update, kept: Promise.resolve(false), file: undefined }, meta).catch((e: unknown) => e)
    expect(isKitsyncError(err, 'PROTOCOL_ERROR')).toBe(true)
    expect(batches.map((ops) => ops.map((op) => `${op.type} ${op.key}`))).toEqual([['put s!c'], ['del s!c']])
  })

  it('references a kept file with the metadata in one batch; removes a dropped one', async () => {
    const kept = fakeStore()
    const snap = await storeAdopted(kept.store, 'c', { update, kept: Promise.resolve(true), file: fileWrite() }, meta)
    expect(kept.batches.map((ops) => ops.map((op) => `${op.type} ${op.key}`))).toEqual([['put m!c', 'put s!c']])
    expect(fileRefOf(snap.value)?.file).toBe('c.1.snap')
    const dropped = fakeStore()
    await expect(storeAdopted(dropped.store, 'c', { update, kept: Promise.resolve(false), file: fileWrite() }, meta)).rejects.toThrow('was not kept')
    expect(dropped.batches).toEqual([])
    expect(dropped.removed).toEqual(['c.1.snap'])
  })
})
