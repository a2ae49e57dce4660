import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { KitsyncError } from '../../src/core/errors.js'
import { openWorkspace } from '../../src/api/open-workspace.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { updateKey } from '../../src/store/doc-layout.js'
import type { BinaryLevel } from '../../src/store/level.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

/**
 * What the first read of a workspace opened on a real LevelDB home reads: after a compaction the
 * deleted log entries stay in LevelDB until its own compaction, and a scan of a range next to
 * them steps over every one (20 ms behind a 1,000,000-record collection), so neither the check
 * that the rows are current nor the settings of a collection read that range.
 */

afterEach(cleanup)

/** Record the keys and ranges read from `db` from now on. */
function watchReads(db: BinaryLevel): { ranges: string[]; keys: string[] } {
  const seen = { ranges: [] as string[], keys: [] as string[] }
  const target = db as unknown as Record<string, (...args: unknown[]) => unknown>
  for (const method of ['iterator', 'keys', 'values']) {
    const original = (target[method] as (...args: unknown[]) => unknown).bind(db)
    target[method] = (...args: unknown[]) => {
      const options = args[0] as { gte?: string; gt?: string } | undefined
      seen.ranges.push(options?.gte ?? options?.gt ?? '')
      return original(...args)
    }
  }
  const get = db.get.bind(db)
  const getMany = db.getMany.bind(db)
  target.get = (key: unknown) => (seen.keys.push(key as string), get(key as string))
  target.getMany = (keys: unknown) => (seen.keys.push(...(keys as string[])), getMany(keys as string[]))
  return seen
}

describe('the first read after an open', () => {
  it('reads a compacted collection from its rows, its log only from the checkpoint on, and nothing of settings never stored', async () => {
    const home = await makeTempDir('ks-open-reads-')
    const writer = await LocalWorkspace.open({ home })
    for (let i = 0; i < 200; i++) await writer.set('bench', `k${i}`, { n: i })
    await writer.compact('bench')
    await writer.close()

    const ws = await LocalWorkspace.open({ home })
    try {
      const checkpoint = await ws.store.checkpoint('bench')
      expect(checkpoint?.seq).toBeGreaterThan(0)
      const reads = watchReads(ws.store.db)
      expect(await ws.get('bench', 'k7')).toEqual({ n: 7 })
      expect(ws.loadedDoc('bench')).toBeUndefined()
      // The log from the checkpoint's own entry (a deletion now), not from its first.
      expect(reads.ranges).toEqual([updateKey('bench', checkpoint?.seq as number)])
      // `_collections` was never written: the default settings, without a read.
      expect(reads.keys.filter((k) => k.includes('_collections'))).toEqual([])
      expect(ws.collectionNames()).toEqual(['bench'])
    } finally {
      await ws.close()
    }
  })

  it('still refuses the rows when the log goes on past the checkpoint', async () => {
    const home = await makeTempDir('ks-open-reads-')
    const ws = await LocalWorkspace.open({ home })
    try {
      await ws.set('bench', 'a', { n: 1 })
      await ws.flush()
      // An entry after the checkpoint (as a crash recovered without rows leaves): the document answers.
      const checkpoint = await ws.store.checkpoint('bench')
      expect(checkpoint).toBeDefined()
      const seq = (checkpoint?.seq as number) + 1
      const { readableFromRows } = await import('../../src/store/stored-check.js')
      expect(await readableFromRows(ws.store.db, ws.store.files, 'bench')).toEqual(checkpoint)
      await ws.store.db.put(updateKey('bench', seq), (await ws.store.db.get(updateKey('bench', seq - 1))) as Uint8Array)
      expect(await readableFromRows(ws.store.db, ws.store.files, 'bench')).toBeUndefined()
    } finally {
      await ws.close()
    }
  })

  it.each([
    ['LocalWorkspace.open', (home: string) => LocalWorkspace.open({ home })],
    ['openWorkspace (the store opened while the modules load)', (home: string) => openWorkspace({ home, mode: 'local', serve: false })],
  ])('%s: an open that fails on workspace.json (read while the store opens) leaves the store closed for the next open', async (_, open) => {
    const home = await makeTempDir('ks-open-reads-')
    const first = await LocalWorkspace.open({ home })
    await first.set('bench', 'a', { n: 1 })
    await first.close()
    await writeFile(join(home, 'workspace.json'), '{ not json')
    const err = await open(home).then(
      () => undefined,
      (e: unknown) => e as KitsyncError,
    )
    expect(err?.code).toBe('DATA_CORRUPTION')
    // The store it opened meanwhile was closed: the same process opens it again (LevelDB's lock).
    await writeFile(join(home, 'workspace.json'), JSON.stringify({ id: 'w1', name: 'n', createdAt: 1 }))
    const again = await open(home)
    try {
      expect(await again.get('bench', 'a')).toEqual({ n: 1 })
    } finally {
      await again.close()
    }
  })
})
