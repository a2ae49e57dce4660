import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import type { StampedEntry } from '../../src/core/folder-manifest.js'
import { applyBatched, WRITE_BATCH } from '../../src/daemon/folder-batch.js'
import { writeFileAtomic } from '../../src/folder/atomic-write.js'
import { DirSyncBatch } from '../../src/folder/dir-sync.js'
import { readDiskEntry } from '../../src/folder/file-state.js'
import type { FolderContext } from '../../src/folder/incoming.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

/**
 * The batched writes of a folder's first sync (folder-batch.ts, dir-sync.ts): entries brought to
 * disk concurrently, never two of one path at once, directory fsyncs deferred to the batch's end;
 * and a write that defers its directory fsync still checks, renames and reports the state on disk.
 */

afterAll(cleanup)

const entry = (fileId: string, path: string, kind: StampedEntry['kind'] = 'text'): StampedEntry => ({
  fileId,
  path,
  kind,
  size: 1,
  hash: 'h',
  x: false,
  pathSide: { device: 'd', stamp: '' },
})

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

describe('applyBatched', () => {
  it('runs writes concurrently, at most WRITE_BATCH at once, never two of one path (by case), binaries last and alone', async () => {
    const entries: StampedEntry[] = []
    for (let i = 0; i < 150; i++) entries.push(entry(`t${i}`, `d${i % 7}/f${i}.yaml`))
    entries.splice(10, 0, entry('clash1', 'd0/F0.YAML'), entry('bin1', 'img.png', 'binary'), entry('clash2', 'D0/f0.yaml'))
    entries.push(entry('dir1', 'd9', 'dir'), entry('bin2', 'b.bin', 'binary'))
    const ctx = { dirSyncs: undefined } as unknown as FolderContext
    const inFlight = new Map<string, string>()
    const done: string[] = []
    let max = 0
    let textAfterBinary = false
    let binaryOverlap = false
    let noBatch = 0
    await applyBatched(ctx, entries, async (id) => {
      const e = entries.find((x) => x.fileId === id) as StampedEntry
      if (e.kind === 'binary' && inFlight.size > 0) binaryOverlap = true
      if (e.kind !== 'binary' && done.some((d) => d.startsWith('bin'))) textAfterBinary = true
      if (e.kind !== 'binary' && ctx.dirSyncs === undefined) noBatch++
      const key = e.path.toLowerCase()
      expect([...inFlight.values()]).not.toContain(key)
      inFlight.set(id, key)
      max = Math.max(max, inFlight.size)
      await new Promise((r) => setTimeout(r, 1))
      inFlight.delete(id)
      done.push(id)
    })
    expect(done.sort()).toEqual(entries.map((e) => e.fileId).sort())
    expect(max).toBeGreaterThan(1)
    expect(max).toBeLessThanOrEqual(WRITE_BATCH)
    expect(binaryOverlap).toBe(false)
    expect(textAfterBinary).toBe(false)
    expect(noBatch).toBe(0)
    expect(ctx.dirSyncs).toBeUndefined()
  })

  it('fsyncs each directory once for the whole call, after the writes of every batch (not once per batch)', async () => {
    const entries: StampedEntry[] = []
    for (let i = 0; i < 3 * WRITE_BATCH; i++) entries.push(entry(`t${i}`, `d${i % 5}/f${i}.json`))
    const ctx = {} as FolderContext
    const flushes: { size: number; written: number }[] = []
    const spy = vi.spyOn(DirSyncBatch.prototype, 'flush').mockImplementation(async function (this: DirSyncBatch) {
      flushes.push({ size: this.size, written })
    })
    const batches = new Set<DirSyncBatch | undefined>()
    let written = 0
    try {
      await applyBatched(ctx, entries, async (id) => {
        const e = entries.find((x) => x.fileId === id) as StampedEntry
        batches.add(ctx.dirSyncs)
        ctx.dirSyncs?.add(`/root/${e.path.split('/')[0] as string}`)
        await new Promise((r) => setTimeout(r, 1))
        written++
      })
    } finally {
      spy.mockRestore()
    }
    expect(batches.size).toBe(1)
    expect(flushes).toEqual([{ size: 5, written: 3 * WRITE_BATCH }])
  })

  it('lets every write of a failing batch end, then throws the failure', async () => {
    const entries = [entry('a', 'a.txt'), entry('b', 'b.txt'), entry('c', 'c.txt')]
    const ctx = {} as FolderContext
    const ended: string[] = []
    await expect(
      applyBatched(ctx, entries, async (id) => {
        if (id === 'a') throw new Error('boom')
        await new Promise((r) => setTimeout(r, 5))
        ended.push(id)
      }),
    ).rejects.toThrow('boom')
    expect(ended.sort()).toEqual(['b', 'c'])
    expect(ctx.dirSyncs).toBeUndefined()
  })
})

describe('writeFileAtomic with deferred directory fsyncs', () => {
  it('writes into new directories, defers one fsync per directory touched, and reports the state on disk', async () => {
    const root = await makeTempDir('ks-batch-')
    const batch = new DirSyncBatch()
    const data = new TextEncoder().encode('id: 1\nname: first\n')
    const r = await writeFileAtomic(join(root, 'x', 'y', 'f.yaml'), data, { expected: 'absent', executable: false, dirSyncs: batch })
    expect(r.status).toBe('written')
    if (r.status !== 'written') return
    expect(await readFile(join(root, 'x', 'y', 'f.yaml'))).toEqual(Buffer.from(data))
    // The hash is the written data's, and the state is what a read of the disk says.
    expect(r.state.hash).toBe(sha(data))
    expect(r.state.binary).toBe(false)
    const disk = await readDiskEntry(join(root, 'x', 'y', 'f.yaml'), Number.MAX_SAFE_INTEGER)
    expect({ ...disk, seenAt: 0 }).toEqual({ ...r.state, seenAt: 0 }) // (seen at other times)
    // root (holds x), x (holds y), x/y (holds f.yaml)
    expect(batch.size).toBe(3)
    const again = await writeFileAtomic(join(root, 'x', 'y', 'g.yaml'), data, { expected: 'absent', executable: false, dirSyncs: batch })
    expect(again.status).toBe('written')
    expect(batch.size).toBe(3)
    await batch.flush()
    expect(batch.size).toBe(0)
    // The state returned is a valid expectation for the next write.
    const next = new TextEncoder().encode('id: 1\nname: second\n')
    const r2 = await writeFileAtomic(join(root, 'x', 'y', 'f.yaml'), next, { expected: r.state, executable: false, dirSyncs: batch })
    expect(r2.status).toBe('written')
    expect(await readFile(join(root, 'x', 'y', 'f.yaml'), 'utf8')).toBe('id: 1\nname: second\n')
  })

  it('still refuses to write over a local edit it was not told of', async () => {
    const root = await makeTempDir('ks-batch-')
    await writeFile(join(root, 'local.txt'), 'mine')
    const batch = new DirSyncBatch()
    const r = await writeFileAtomic(join(root, 'local.txt'), new TextEncoder().encode('theirs'), { expected: 'absent', executable: false, dirSyncs: batch })
    expect(r.status).toBe('changed-under-us')
    expect(await readFile(join(root, 'local.txt'), 'utf8')).toBe('mine')
    expect(batch.size).toBe(0)
  })
})
