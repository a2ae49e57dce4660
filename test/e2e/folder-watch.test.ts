/**
 * The folder watcher on real files: each editor's way of saving is exactly one change with the
 * final content, renames and deletes are reported as such, excluded files and symlinks are not
 * taken, and `.kitsyncignore` is honoured when it changes.
 *
 * "Exactly one": after a save, the test writes a sentinel file and waits for it. Events reach the
 * watcher in the order the kernel queued them, so any other change the save caused is reported
 * in the sentinel's batch or before it: all batches up to the sentinel are compared whole.
 */
import { createHash } from 'node:crypto'
import { chmod, link, mkdir, open, readFile, rename, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { FolderWatcher, type FolderChange } from '../../src/folder/folder-watcher.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

afterAll(cleanup)

const DEADLINE_MS = 10_000
const watchers: FolderWatcher[] = []
afterEach(async () => {
  for (const w of watchers.splice(0)) await w.stop()
})

const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Batches as the watcher emitted them (the order inside a batch means nothing). */
async function startIn(
  root: string,
  options: ConstructorParameters<typeof FolderWatcher>[1] = {},
): Promise<{ watcher: FolderWatcher; seen: FolderChange[][] }> {
  const watcher = new FolderWatcher(root, options)
  watchers.push(watcher)
  const seen: FolderChange[][] = []
  watcher.on('changes', (batch) => seen.push(batch))
  await watcher.start()
  return { watcher, seen }
}

let sentinelCount = 0
/** Write a sentinel and return every change reported up to its batch, that batch included (the sentinel's own left out). */
async function changesUntilSentinel(root: string, seen: FolderChange[][]): Promise<FolderChange[]> {
  const name = `sentinel-${++sentinelCount}.txt`
  await writeFile(join(root, name), 'sentinel')
  const deadline = Date.now() + DEADLINE_MS
  for (;;) {
    const i = seen.findIndex((batch) => batch.some((c) => c.path === name))
    if (i >= 0)
      return seen
        .splice(0, i + 1)
        .flat()
        .filter((c) => c.path !== name)
    if (Date.now() > deadline) throw new Error(`no change for ${name} within ${DEADLINE_MS} ms; seen ${JSON.stringify(seen)}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const simplify = (changes: FolderChange[]): unknown[] =>
  changes.map((c) =>
    'state' in c ? { kind: c.kind, path: c.path, hash: c.state.hash, ...('from' in c ? { from: c.from } : {}) } : { kind: c.kind, path: c.path },
  )

const FINAL = 'line 1\nline 2 edited\nline 3\n'

/** Each way an editor saves `notes.txt` with FINAL. */
const SAVE_PATTERNS: Array<[string, (root: string) => Promise<void>]> = [
  [
    'write in place (same inode, no truncate first)',
    async (root) => {
      const fh = await open(join(root, 'notes.txt'), 'r+')
      await fh.write(FINAL, 0)
      await fh.truncate(Buffer.byteLength(FINAL))
      await fh.close()
    },
  ],
  [
    'truncate, then write in two pieces',
    async (root) => {
      await truncate(join(root, 'notes.txt'), 0)
      const fh = await open(join(root, 'notes.txt'), 'r+')
      await fh.write(FINAL.slice(0, 10), 0)
      await fh.write(FINAL.slice(10), 10)
      await fh.close()
    },
  ],
  [
    'write a temp file and rename it over (write-file-atomic style name)',
    async (root) => {
      await writeFile(join(root, 'notes.txt.3141592653'), FINAL)
      await rename(join(root, 'notes.txt.3141592653'), join(root, 'notes.txt'))
    },
  ],
  [
    'vim: rename to the backup, probe 4913, write anew, remove the backup',
    async (root) => {
      await writeFile(join(root, '4913'), '')
      await unlink(join(root, '4913'))
      await rename(join(root, 'notes.txt'), join(root, 'notes.txt~'))
      await writeFile(join(root, 'notes.txt'), FINAL)
      await chmod(join(root, 'notes.txt'), 0o644)
      await unlink(join(root, 'notes.txt~'))
    },
  ],
  [
    'emacs: rename to the backup and keep it, write anew',
    async (root) => {
      await rename(join(root, 'notes.txt'), join(root, 'notes.txt~'))
      await writeFile(join(root, 'notes.txt'), FINAL)
    },
  ],
  [
    'JetBrains safe write: ___jb_tmp___ and ___jb_old___',
    async (root) => {
      await writeFile(join(root, 'notes.txt___jb_tmp___'), FINAL)
      await rename(join(root, 'notes.txt'), join(root, 'notes.txt___jb_old___'))
      await rename(join(root, 'notes.txt___jb_tmp___'), join(root, 'notes.txt'))
      await unlink(join(root, 'notes.txt___jb_old___'))
    },
  ],
]

describe('editor save patterns', () => {
  it.each(SAVE_PATTERNS)('%s is exactly one change with the final content', async (_name, save) => {
    const root = await makeTempDir('ks-watch-')
    await writeFile(join(root, 'notes.txt'), 'line 1\nline 2\nline 3\n')
    const { seen } = await startIn(root)
    await save(root)
    const changes = await changesUntilSentinel(root, seen)
    expect(simplify(changes)).toEqual([{ kind: 'modified', path: 'notes.txt', hash: sha(FINAL) }])
    expect(await readFile(join(root, 'notes.txt'), 'utf8')).toBe(FINAL)
  })

  it('two saves 20 ms apart: the last content is reported (chokidar 4 loses it)', async () => {
    const root = await makeTempDir('ks-watch-')
    await writeFile(join(root, 'notes.txt'), 'v0')
    const { seen } = await startIn(root)
    await writeFile(join(root, 'notes.txt'), 'v1')
    await new Promise((r) => setTimeout(r, 20))
    await writeFile(join(root, 'notes.txt'), 'v2 final')
    const changes = await changesUntilSentinel(root, seen)
    expect(changes.filter((c) => c.path === 'notes.txt').at(-1)).toMatchObject({ kind: 'modified', path: 'notes.txt', state: { hash: sha('v2 final') } })
  })
})

describe('what the watcher reports', () => {
  it('add, executable bit, rename, delete, new directory with a file, removed directory', async () => {
    const root = await makeTempDir('ks-watch-')
    await writeFile(join(root, 'a.txt'), 'alpha')
    const { seen } = await startIn(root)

    await writeFile(join(root, 'b.txt'), 'beta')
    expect(simplify(await changesUntilSentinel(root, seen))).toEqual([{ kind: 'added', path: 'b.txt', hash: sha('beta') }])

    await chmod(join(root, 'b.txt'), 0o755)
    expect(await changesUntilSentinel(root, seen)).toMatchObject([{ kind: 'modified', path: 'b.txt', state: { executable: true } }])

    await rename(join(root, 'a.txt'), join(root, 'renamed.txt'))
    expect(simplify(await changesUntilSentinel(root, seen))).toEqual([{ kind: 'renamed', path: 'renamed.txt', from: 'a.txt', hash: sha('alpha') }])

    await unlink(join(root, 'b.txt'))
    expect(simplify(await changesUntilSentinel(root, seen))).toEqual([{ kind: 'removed', path: 'b.txt' }])

    await mkdir(join(root, 'd1', 'd2'), { recursive: true })
    await writeFile(join(root, 'd1', 'd2', 'deep.json'), '{}')
    const made = simplify(await changesUntilSentinel(root, seen))
    expect(made).toEqual(
      expect.arrayContaining([
        { kind: 'dir-added', path: 'd1' },
        { kind: 'dir-added', path: 'd1/d2' },
        { kind: 'added', path: 'd1/d2/deep.json', hash: sha('{}') },
      ]),
    )
    expect(made).toHaveLength(3)

    // A file written into the new directory later is seen too (it is watched now).
    await writeFile(join(root, 'd1', 'd2', 'later.json'), '[]')
    expect(simplify(await changesUntilSentinel(root, seen))).toEqual([{ kind: 'added', path: 'd1/d2/later.json', hash: sha('[]') }])

    await rm(join(root, 'd1'), { recursive: true })
    const gone = simplify(await changesUntilSentinel(root, seen))
    expect(gone).toEqual(
      expect.arrayContaining([
        { kind: 'dir-removed', path: 'd1' },
        { kind: 'dir-removed', path: 'd1/d2' },
        { kind: 'removed', path: 'd1/d2/deep.json' },
        { kind: 'removed', path: 'd1/d2/later.json' },
      ]),
    )
    expect(gone).toHaveLength(4)
  })

  it('a directory renamed is each of its files renamed', async () => {
    const root = await makeTempDir('ks-watch-')
    await mkdir(join(root, 'old'))
    await writeFile(join(root, 'old', 'x.yaml'), 'x: 1\n')
    const { seen } = await startIn(root)
    await rename(join(root, 'old'), join(root, 'new'))
    const changes = simplify(await changesUntilSentinel(root, seen))
    expect(changes).toEqual(
      expect.arrayContaining([
        { kind: 'dir-removed', path: 'old' },
        { kind: 'dir-added', path: 'new' },
        { kind: 'renamed', path: 'new/x.yaml', from: 'old/x.yaml', hash: sha('x: 1\n') },
      ]),
    )
    expect(changes).toHaveLength(3)
  })

  it('excluded files, editor droppings, binaries, large files and .git are not taken; a symlink is reported as skipped', async () => {
    const root = await makeTempDir('ks-watch-')
    await mkdir(join(root, '.git'))
    const { seen } = await startIn(root, { exclude: ['*.duckdb'], maxFileSize: 1000 })
    await writeFile(join(root, 'sim.duckdb'), 'x')
    await writeFile(join(root, '.notes.txt.swp'), 'x')
    await writeFile(join(root, '#notes.txt#'), 'x')
    await writeFile(join(root, '.DS_Store'), 'x')
    await writeFile(join(root, '.git', 'index'), 'x')
    await writeFile(join(root, 'logo.png'), Buffer.from([0, 1, 2, 3]))
    await writeFile(join(root, 'big.txt'), 'z'.repeat(1001))
    await symlink('/etc/hostname', join(root, 'host'))
    const changes = await changesUntilSentinel(root, seen)
    expect(changes).toEqual([
      { kind: 'excluded', path: 'big.txt', reason: 'too-large' },
      { kind: 'excluded', path: 'host', reason: 'symlink' },
      { kind: 'excluded', path: 'logo.png', reason: 'binary' },
    ])
  })

  it('a .kitsyncignore written while watching applies at once: its files are excluded, new ones ignored', async () => {
    const root = await makeTempDir('ks-watch-')
    await writeFile(join(root, 'keep.json'), '{}')
    await writeFile(join(root, 'out.csv'), 'a,b')
    const { seen, watcher } = await startIn(root)
    expect([...watcher.snapshot().keys()].sort()).toEqual(['keep.json', 'out.csv'])
    await writeFile(join(root, '.kitsyncignore'), '*.csv\n')
    const changes = simplify(await changesUntilSentinel(root, seen))
    expect(changes).toEqual(
      expect.arrayContaining([
        { kind: 'added', path: '.kitsyncignore', hash: sha('*.csv\n') },
        { kind: 'excluded', path: 'out.csv' },
      ]),
    )
    expect(changes).toHaveLength(2)
    await writeFile(join(root, 'more.csv'), 'c,d')
    expect(await changesUntilSentinel(root, seen)).toEqual([])
  })

  it("the folder layer's own writes (hold) are not reported as local changes", async () => {
    const root = await makeTempDir('ks-watch-')
    await writeFile(join(root, 'a.txt'), 'one')
    const { seen, watcher } = await startIn(root)
    const { readDiskEntry } = await import('../../src/folder/file-state.js')
    await watcher.hold('a.txt', async () => {
      await writeFile(join(root, 'a.txt'), 'two, from a peer')
      const state = await readDiskEntry(join(root, 'a.txt'), 1 << 20)
      if (state.kind !== 'file') throw new Error('not written')
      return { state }
    })
    expect(await changesUntilSentinel(root, seen)).toEqual([])
    expect(watcher.known('a.txt')?.hash).toBe(sha('two, from a peer'))
  })

  it('a write inotify does not report (through a hard link outside the folder) is found by the periodic rescan', async () => {
    const base = await makeTempDir('ks-watch-')
    const root = join(base, 'folder')
    await mkdir(root)
    await writeFile(join(root, 'linked.txt'), 'before')
    await link(join(root, 'linked.txt'), join(base, 'outside-link.txt'))
    const { seen } = await startIn(root, { rescanIntervalMs: 200 })
    const fh = await open(join(base, 'outside-link.txt'), 'r+')
    await fh.write('after!', 0)
    await fh.close()
    const deadline = Date.now() + DEADLINE_MS
    while (!seen.flat().some((c) => c.path === 'linked.txt')) {
      if (Date.now() > deadline) throw new Error('the rescan did not find the change')
      await new Promise((r) => setTimeout(r, 10))
    }
    expect(simplify(seen.flat())).toEqual([{ kind: 'modified', path: 'linked.txt', hash: sha('after!') }])
  })
})
