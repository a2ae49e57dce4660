import { createHash } from 'node:crypto'
import { open, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { FolderWatcher } from '../../src/folder/folder-watcher.js'
import { RACY_MS, readDiskEntry, type FileState } from '../../src/folder/file-state.js'
import { cleanup, makeTempDir, waitUntil } from '../helpers/cli.js'
import { announceSkip, mountCoarseTimes, rootSkipReason } from '../helpers/faults.js'

/**
 * The stat cache's racy case (git's "racily clean" entries): a second write of the same size
 * within the time tick of the first leaves size, times and inode as they were, so a hash kept
 * for that stat hides it. On a real file system whose times are whole seconds (ext2 with
 * 128-byte inodes, on a loop device: root), a state seen within RACY_MS of its mtime is read again.
 */

const skip = rootSkipReason('a loop-mounted ext2 with times in whole seconds')
announceSkip('racy-stat.test.ts', skip)
afterAll(cleanup)

const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Overwrite in place (same inode, same size), as an editor saving in place does. */
async function overwrite(abs: string, text: string): Promise<void> {
  const fh = await open(abs, 'r+')
  await fh.write(text, 0)
  await fh.close()
}

describe.skipIf(skip !== undefined)('a same-size write in the second of the state it follows', () => {
  let fs: Awaited<ReturnType<typeof mountCoarseTimes>> | undefined
  const watchers: FolderWatcher[] = []
  afterEach(async () => {
    for (const w of watchers.splice(0)) await w.stop()
    await fs?.dispose()
    fs = undefined
  })

  it('is read again, not taken from the stat cache (readDiskEntry)', async () => {
    fs = await mountCoarseTimes()
    for (let attempt = 0; attempt < 20; attempt++) {
      const abs = join(fs.dir, `flag-${attempt}.txt`)
      await writeFile(abs, 'aaaa')
      const first = (await readDiskEntry(abs, 1 << 20)) as FileState
      await overwrite(abs, 'bbbb')
      const now = await stat(abs)
      if (now.mtimeMs !== first.mtimeMs || now.ctimeMs !== first.ctimeMs) continue // a second boundary fell in between
      expect(now.size).toBe(first.size)
      expect(now.ino).toBe(first.ino)
      expect(first.hash).toBe(sha('aaaa'))
      expect(((await readDiskEntry(abs, 1 << 20, first)) as FileState).hash, 'the second write, same stat').toBe(sha('bbbb'))
      return
    }
    throw new Error('no two writes landed in one second in 20 tries')
  })

  it('the folder watcher reports it', async () => {
    fs = await mountCoarseTimes()
    const watcher = new FolderWatcher(fs.dir)
    watchers.push(watcher)
    await watcher.start()
    for (let attempt = 0; attempt < 20; attempt++) {
      const path = `notes-${attempt}.txt`
      const abs = join(fs.dir, path)
      await writeFile(abs, 'aaaa')
      await waitUntil(async () => (watcher.snapshot().get(path)?.hash === sha('aaaa') ? true : undefined), 10_000, `${path} seen`)
      const first = watcher.snapshot().get(path) as FileState
      await overwrite(abs, 'bbbb')
      const now = await stat(abs)
      if (now.mtimeMs !== first.mtimeMs || now.ctimeMs !== first.ctimeMs) continue
      await waitUntil(async () => (watcher.snapshot().get(path)?.hash === sha('bbbb') ? true : undefined), 10_000, `the second write of ${path}`)
      return
    }
    throw new Error('no two writes landed in one second in 20 tries')
  })
})

describe('the racy window', () => {
  it('a state seen well after its mtime keeps its hash for an unchanged stat, as does one saved without a time; one seen within RACY_MS does not', async () => {
    const abs = join(await makeTempDir('ks-racy-'), 'old.txt')
    await writeFile(abs, 'cccc')
    const st = await stat(abs)
    const known: FileState = {
      kind: 'file',
      size: st.size,
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
      ino: st.ino,
      executable: false,
      hash: 'f'.repeat(64), // not the content: proves the cached hash was used, not the file read
      binary: false,
      seenAt: st.mtimeMs + RACY_MS + 1,
    }
    expect(((await readDiskEntry(abs, 1 << 20, known)) as FileState).hash).toBe(known.hash)
    const { seenAt: _seen, ...saved } = known
    expect(((await readDiskEntry(abs, 1 << 20, saved)) as FileState).hash).toBe(known.hash)
    expect(((await readDiskEntry(abs, 1 << 20, { ...known, seenAt: st.mtimeMs + 5 })) as FileState).hash).toBe(sha('cccc'))
  })
})
