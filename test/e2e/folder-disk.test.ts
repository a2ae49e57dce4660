/**
 * The folder layer on real files in temp dirs: a peer's path resolved or refused (with a symlink
 * planted inside the folder pointing outside), the full scan, atomic writes that refuse to
 * clobber an uncaptured save, the executable bit, and the trash.
 */
import { chmod, lstat, mkdir, readFile, readdir, rename, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isKitsyncError } from '../../src/core/errors.js'
import { writeFileAtomic, removeFileChecked, removeTempFiles } from '../../src/folder/atomic-write.js'
import { RACY_MS, readDiskEntry, type FileState } from '../../src/folder/file-state.js'
import { resolvePeerPath, safePeerPath } from '../../src/folder/safe-path.js'
import { loadSelection, scanFolder } from '../../src/folder/scan.js'
import { FolderTrash } from '../../src/folder/trash.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

afterAll(cleanup)

async function fileState(abs: string): Promise<FileState> {
  const e = await readDiskEntry(abs, Number.MAX_SAFE_INTEGER)
  if (e.kind !== 'file') throw new Error(`${abs} is ${e.kind}`)
  return e
}

describe('a peer path made safe', () => {
  it.each([
    ['../outside.txt', 'DOT_SEGMENT'],
    ['a/../../outside.txt', 'DOT_SEGMENT'],
    ['/etc/passwd', 'ABSOLUTE'],
    ['..\\outside.txt', 'BACKSLASH'],
    ['a\0.txt', 'NUL'],
    ['.kitsync/trash/x', 'RESERVED'],
    ['.git/hooks/post-checkout', 'RESERVED'],
    ['escape/passwd', 'SYMLINK'],
    ['escape/new/deeper.txt', 'SYMLINK'],
    ['link.txt', 'SYMLINK'],
    ['plain.txt/child', 'NOT_A_DIRECTORY'],
  ])('%j is refused (%s) and nothing outside the folder is touched', async (path, reason) => {
    const base = await makeTempDir('ks-fold-')
    const root = join(base, 'folder')
    const outside = join(base, 'outside')
    await mkdir(root)
    await mkdir(outside)
    await writeFile(join(outside, 'passwd'), 'secret')
    await writeFile(join(root, 'plain.txt'), 'x')
    // Planted by a hostile member or a careless user: symlinks inside the folder to outside.
    await symlink(outside, join(root, 'escape'))
    await symlink(join(outside, 'passwd'), join(root, 'link.txt'))
    expect(await resolvePeerPath(root, path)).toEqual({ ok: false, reason })
    const err = await safePeerPath(root, path).catch((e: unknown) => e)
    expect(isKitsyncError(err, 'INVALID_NAME')).toBe(true)
    expect((err as { details: { reason: string } }).details.reason).toBe(reason)
    expect(await readdir(outside)).toEqual(['passwd'])
    expect(await readFile(join(outside, 'passwd'), 'utf8')).toBe('secret')
  })

  it('a name that differs only by case is a conflict on a case-insensitive file system, a new file otherwise', async () => {
    const root = await makeTempDir('ks-fold-')
    await mkdir(join(root, 'Docs'))
    await writeFile(join(root, 'Docs', 'Readme.md'), 'x')
    expect(await resolvePeerPath(root, 'Docs/README.md', { caseInsensitive: true })).toEqual({ ok: false, reason: 'CASE_CONFLICT' })
    expect(await resolvePeerPath(root, 'docs/new.md', { caseInsensitive: true })).toEqual({ ok: false, reason: 'CASE_CONFLICT' })
    expect(await resolvePeerPath(root, 'Docs/Readme.md', { caseInsensitive: true })).toMatchObject({ ok: true, abs: join(root, 'Docs', 'Readme.md') })
    expect(await resolvePeerPath(root, 'Docs/README.md')).toMatchObject({ ok: true, abs: join(root, 'Docs', 'README.md') })
  })

  it('a path through directories that exist, or do not yet, resolves inside the folder', async () => {
    const root = await makeTempDir('ks-fold-')
    await mkdir(join(root, 'a'))
    expect(await resolvePeerPath(root, 'a/b/c.json')).toEqual({ ok: true, abs: join(root, 'a', 'b', 'c.json'), parts: ['a', 'b', 'c.json'] })
  })
})

describe('the full scan', () => {
  it('takes text files and empty directories, and reports what it skips with why', async () => {
    const root = await makeTempDir('ks-fold-')
    await mkdir(join(root, 'ws', 'scenarios', 's1', 'results'), { recursive: true })
    await mkdir(join(root, 'empty'))
    await mkdir(join(root, '.git'))
    await mkdir(join(root, '.kitsync'))
    await writeFile(join(root, 'ws', 'workspace.json'), '{"name":"ws"}')
    await writeFile(join(root, 'ws', 'scenarios', 's1', 'config.yaml'), 'a: 1\n')
    await writeFile(join(root, 'ws', 'scenarios', 's1', 'simulation.duckdb'), 'x')
    await writeFile(join(root, 'ws', 'scenarios', 's1', 'results', 'out.xlsx'), 'x')
    await writeFile(join(root, 'ws', 'big.txt'), 'y'.repeat(2 * 1024 * 1024))
    await writeFile(join(root, 'logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]))
    await writeFile(join(root, '.git', 'config'), 'x')
    await writeFile(join(root, '.kitsync', 'state'), 'x')
    await writeFile(join(root, '.notes.swp'), 'x')
    await writeFile(join(root, '.kitsyncignore'), '*.xlsx\n')
    await symlink('/etc/hostname', join(root, 'host'))
    const scan = await scanFolder(root, await loadSelection(root, { exclude: ['*.duckdb'] }))
    expect([...scan.files.keys()].sort()).toEqual(['.kitsyncignore', 'ws/scenarios/s1/config.yaml', 'ws/workspace.json'])
    expect([...scan.dirs].sort()).toEqual(['empty', 'ws', 'ws/scenarios', 'ws/scenarios/s1', 'ws/scenarios/s1/results'])
    const skipped = Object.fromEntries(scan.skipped.map((s) => [s.path, s.reason]))
    expect(skipped).toEqual({
      '.git': 'default',
      '.notes.swp': 'default',
      host: 'symlink',
      'logo.png': 'binary',
      'ws/big.txt': 'too-large',
      'ws/scenarios/s1/simulation.duckdb': 'exclude',
      'ws/scenarios/s1/results/out.xlsx': 'ignore-file',
    })
    const cfg = scan.files.get('ws/scenarios/s1/config.yaml')
    expect(cfg).toMatchObject({ size: 5, binary: false, executable: false })
    expect(cfg?.hash).toMatch(/^[0-9a-f]{64}$/)
  })

  it('reuses a hash only while size, times and inode are unchanged', async () => {
    const root = await makeTempDir('ks-fold-')
    await writeFile(join(root, 'a.txt'), 'one')
    const sel = await loadSelection(root)
    const first = await scanFolder(root, sel)
    const seen = first.files.get('a.txt') as FileState
    // Seen just after its write, the state is racy (file-state.ts RACY_MS): read again, whatever it says.
    expect((await scanFolder(root, sel, new Map([['a.txt', { ...seen, hash: 'cached' }]]))).files.get('a.txt')?.hash).not.toBe('cached')
    // Seen once the file was older than a time tick, its hash is reused while the stat is unchanged.
    const fake = new Map([['a.txt', { ...seen, hash: 'cached', seenAt: seen.mtimeMs + RACY_MS + 1 }]])
    expect((await scanFolder(root, sel, fake)).files.get('a.txt')?.hash).toBe('cached')
    await writeFile(join(root, 'a.txt'), 'two!')
    expect((await scanFolder(root, sel, fake)).files.get('a.txt')?.hash).not.toBe('cached')
  })
})

describe('atomic writes', () => {
  it('writes a new file, then replaces it, keeping the old one in the trash', async () => {
    const root = await makeTempDir('ks-fold-')
    const abs = join(root, 'a', 'notes.txt')
    const trash = new FolderTrash(root)
    const first = await writeFileAtomic(abs, Buffer.from('v1'), { expected: 'absent', executable: false })
    expect(first.status).toBe('written')
    const captured = await fileState(abs)
    const second = await writeFileAtomic(abs, Buffer.from('v2'), { expected: captured, executable: false, trash: { trash, path: 'a/notes.txt' } })
    expect(second).toMatchObject({ status: 'written', trashed: { path: 'a/notes.txt', reason: 'overwritten', size: 2 } })
    expect(await readFile(abs, 'utf8')).toBe('v2')
    const [entry] = await trash.list()
    expect(await readFile(join(trash.dir, entry!.id, 'content'), 'utf8')).toBe('v1')
    expect((await readdir(join(root, 'a'))).sort()).toEqual(['notes.txt'])
  })

  it("refuses with 'changed-under-us' when the file is not what was captured, and leaves it alone", async () => {
    const root = await makeTempDir('ks-fold-')
    const abs = join(root, 'notes.txt')
    await writeFile(abs, 'captured')
    const captured = await fileState(abs)
    await writeFile(abs, 'edited, not captured yet')
    const r = await writeFileAtomic(abs, Buffer.from('from a peer'), { expected: captured, executable: false })
    expect(r).toMatchObject({ status: 'changed-under-us', current: { kind: 'file', size: 24 } })
    expect(await readFile(abs, 'utf8')).toBe('edited, not captured yet')
    const created = await writeFileAtomic(join(root, 'new.txt'), Buffer.from('x'), { expected: 'absent', executable: false })
    expect(created.status).toBe('written')
    const again = await writeFileAtomic(join(root, 'new.txt'), Buffer.from('y'), { expected: 'absent', executable: false })
    expect(again.status).toBe('changed-under-us')
    expect(await readdir(root)).toEqual(['new.txt', 'notes.txt'])
  })

  it('keeps the mode, and sets or clears only the executable bit', async () => {
    const root = await makeTempDir('ks-fold-')
    const abs = join(root, 'run.sh')
    await writeFile(abs, 'echo 1')
    await chmod(abs, 0o640)
    await writeFileAtomic(abs, Buffer.from('echo 2'), { expected: await fileState(abs), executable: true })
    expect((await lstat(abs)).mode & 0o777).toBe(0o750)
    expect((await fileState(abs)).executable).toBe(true)
    await writeFileAtomic(abs, Buffer.from('echo 3'), { expected: await fileState(abs), executable: false })
    expect((await lstat(abs)).mode & 0o777).toBe(0o640)
  })

  it('replaces a file, never the target of a symlink planted at its path', async () => {
    const base = await makeTempDir('ks-fold-')
    const root = join(base, 'folder')
    await mkdir(root)
    await writeFile(join(base, 'target'), 'outside')
    await symlink(join(base, 'target'), join(root, 'x.txt'))
    const r = await writeFileAtomic(join(root, 'x.txt'), Buffer.from('peer'), { expected: 'absent', executable: false })
    expect(r.status).toBe('changed-under-us')
    expect(await readFile(join(base, 'target'), 'utf8')).toBe('outside')
  })

  it('a delete moves the file to the trash only if unchanged; restore puts it back, never over a file', async () => {
    const root = await makeTempDir('ks-fold-')
    const trash = new FolderTrash(root)
    const abs = join(root, 'doc.md')
    await writeFile(abs, 'keep me')
    const captured = await fileState(abs)
    const removed = await removeFileChecked(abs, captured, { trash, path: 'doc.md' })
    expect(removed).toMatchObject({ status: 'removed', trashed: { path: 'doc.md', reason: 'deleted' } })
    expect(await readdir(root)).toEqual(['.kitsync'])
    const [entry] = await trash.list()
    await writeFile(abs, 'a new file took the name')
    await expect(trash.restore(entry!.id)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await rename(abs, join(root, 'other.md'))
    const restored = await trash.restore(entry!.id)
    expect(restored.path).toBe('doc.md')
    expect(await readFile(abs, 'utf8')).toBe('keep me')
    expect(await trash.list()).toEqual([])
    // An edit after the capture is not deleted.
    await writeFile(abs, 'edited')
    expect((await removeFileChecked(abs, captured, { trash, path: 'doc.md' })).status).toBe('changed-under-us')
    expect(await readFile(abs, 'utf8')).toBe('edited')
  })

  it('the trash forgets entries past the retention period, and is private', async () => {
    const root = await makeTempDir('ks-fold-')
    let now = 1_000_000
    const trash = new FolderTrash(root, { retentionMs: 1000, now: () => now })
    await writeFile(join(root, 'a.txt'), 'a')
    await trash.keep('a.txt', join(root, 'a.txt'), 'deleted')
    now += 500
    await writeFile(join(root, 'b.txt'), 'b')
    await trash.keep('b.txt', join(root, 'b.txt'), 'deleted')
    expect((await lstat(trash.dir)).mode & 0o777).toBe(0o700)
    now += 600
    expect(await trash.purge()).toBe(1)
    expect((await trash.list()).map((e) => e.path)).toEqual(['b.txt'])
  })

  it('removes temp files a crash left behind', async () => {
    const root = await makeTempDir('ks-fold-')
    await mkdir(join(root, 'd'))
    await writeFile(join(root, 'd', '.x.txt.kitsync-tmp-0123456789ab'), 'half')
    await writeFile(join(root, 'd', 'x.txt'), 'whole')
    expect(await removeTempFiles(root)).toBe(1)
    expect(await readdir(join(root, 'd'))).toEqual(['x.txt'])
  })
})
