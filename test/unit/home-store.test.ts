import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { homePaths, type HomePaths } from '../../src/store/home.js'
import { openHomeStore } from '../../src/store/level.js'

/**
 * openHomeStore on real folders: which homes get a new store, and which are refused because
 * something in them says a store was there (the CLI side is test/faults/missing-store-files.test.ts).
 */

const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function home(): Promise<HomePaths> {
  const dir = await mkdtemp(join(tmpdir(), 'ks-home-store-'))
  dirs.push(dir)
  return homePaths(dir)
}

async function opens(paths: HomePaths): Promise<void> {
  const db = await openHomeStore(paths)
  await db.put('k', new Uint8Array([1]))
  await db.close()
  expect(await readdir(paths.home)).toContain('store.marker')
}

describe('openHomeStore', () => {
  it('creates the store of an empty home, and of one whose creation stopped before CURRENT', async () => {
    await opens(await home())
    // What LevelDB leaves when it stops between writing MANIFEST-000001 and CURRENT: nothing stored.
    const paths = await home()
    await mkdir(paths.store)
    for (const f of ['LOCK', 'LOG', 'MANIFEST-000001']) await writeFile(join(paths.store, f), '')
    await opens(paths)
  })

  it.each([
    ['store.wal holds writes', async (p: HomePaths) => writeFile(p.wal, 'x'.repeat(40)), /store\/ is missing .* store\.wal holds 40 bytes of writes/],
    [
      'snapshots/ holds a file',
      async (p: HomePaths) => mkdir(p.snapshots).then(() => writeFile(join(p.snapshots, 'big.0123456789ab.snap'), 'x')),
      /snapshots\/ holds 1 snapshot file/,
    ],
    [
      'store.marker is there',
      async (p: HomePaths) => writeFile(p.storeMarker, 'created 2026-01-01T00:00:00.000Z\n'),
      /store\.marker says a store was created here \(2026-01-01T00:00:00\.000Z\)/,
    ],
    [
      'store/ holds a table file',
      async (p: HomePaths) => mkdir(p.store).then(() => writeFile(join(p.store, '000005.ldb'), 'x')),
      /store\/CURRENT is missing .* store\/ holds 1 table file/,
    ],
  ])('refuses a home without store/CURRENT where %s, and creates nothing', async (_what, prepare, message) => {
    const paths = await home()
    await prepare(paths)
    const before = (await readdir(paths.home, { recursive: true })).sort()
    await expect(openHomeStore(paths)).rejects.toMatchObject({ code: 'DATA_CORRUPTION', message })
    expect((await readdir(paths.home, { recursive: true })).sort()).toEqual(before)
  })
})
