import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_MAX_FILE_SIZE } from '../../src/core/folder-selection.js'
import { fileText, newTextFileDoc } from '../../src/core/folder-text-doc.js'
import { FolderEngine } from '../../src/daemon/folder-engine.js'
import { folderCollection, type FolderDefinition } from '../../src/daemon/folder-host.js'
import { readDiskEntry, readFileState, type FileState } from '../../src/folder/file-state.js'
import { readAhead } from '../../src/folder/read-ahead.js'
import { resolvePeerPath } from '../../src/folder/safe-path.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'
import { FakeFolderNet } from '../helpers/fake-folder-net.js'
import { prng } from '../helpers/memory-mesh.js'

/**
 * The local capture path of a folder (daemon/folder-capture.ts): reads run ahead of the captures
 * within bounds and in order, a file is read once (state and bytes from one open, never through
 * a symlink), directories are checked once per batch, and a batch's new files become units whose
 * stored text is the file's, however many captures of one file the batch holds.
 */

afterAll(cleanup)

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex')

describe('readAhead', () => {
  it('gives results in order, with at most `concurrency` reads at once and at most `window` ahead of the taker', async () => {
    const items = Array.from({ length: 50 }, (_, i) => i)
    let running = 0
    let maxRunning = 0
    let started = 0
    let taken = 0
    let maxAhead = 0
    const gates: (() => void)[] = []
    const read = async (i: number): Promise<number> => {
      running++
      started++
      maxRunning = Math.max(maxRunning, running)
      maxAhead = Math.max(maxAhead, started - taken)
      // Finish out of order: odd items wait for a later tick.
      await new Promise<void>((r) => (i % 2 === 1 ? gates.push(r) : setImmediate(r)))
      running--
      return i * 10
    }
    const flusher = setInterval(() => gates.splice(0).forEach((g) => g()), 1)
    try {
      const next = readAhead(items, read, { concurrency: 4, window: 8 })
      const out: number[] = []
      for (let k = 0; k < items.length; k++) {
        taken++ // the item asked for counts as taken
        out.push(await next())
      }
      expect(out).toEqual(items.map((i) => i * 10))
      expect(maxRunning).toBeLessThanOrEqual(4)
      expect(maxRunning).toBeGreaterThan(1)
      expect(maxAhead).toBeLessThanOrEqual(8)
      await expect(next()).rejects.toThrow(RangeError)
    } finally {
      clearInterval(flusher)
    }
  })

  it('throws a failed read where its result is taken, and goes on with the next', async () => {
    const next = readAhead([1, 2, 3], async (i) => {
      if (i === 2) throw new Error('read 2 failed')
      return i
    })
    // The failure happens before it is taken: no unhandled rejection (vitest fails the run on one).
    await new Promise((r) => setTimeout(r, 10))
    expect(await next()).toBe(1)
    await expect(next()).rejects.toThrow('read 2 failed')
    expect(await next()).toBe(3)
  })
})

describe('readFileState', () => {
  it('reads a file once: the same state and hash as readDiskEntry, with its text', async () => {
    const root = await makeTempDir('ks-fcap-')
    const abs = join(root, 'a.json')
    await writeFile(abs, '{"a": 1}\n', { mode: 0o755 })
    const r = await readFileState(abs)
    const e = await readDiskEntry(abs, DEFAULT_MAX_FILE_SIZE)
    // The same state, but for when each was seen (seenAt: the stat cache's racy window, file-state.ts).
    expect({ ...r.entry, seenAt: 0 }).toEqual({ ...e, seenAt: 0 })
    expect(r.entry).toMatchObject({ kind: 'file', size: 9, hash: sha('{"a": 1}\n'), executable: true, binary: false })
    expect(r.text).toBe('{"a": 1}\n')
    expect(r.bytes?.toString()).toBe('{"a": 1}\n')
  })

  it('says binary (no text) for a file with a NUL, and symlink, missing, dir, other for the rest, without blocking on a FIFO', async () => {
    const root = await makeTempDir('ks-fcap-')
    await writeFile(join(root, 'b.bin'), Buffer.from([1, 0, 2]))
    await writeFile(join(root, 'target.txt'), 'secret')
    await symlink(join(root, 'target.txt'), join(root, 'link.txt'))
    await mkdir(join(root, 'dir'))
    execFileSync('mkfifo', [join(root, 'fifo')])
    const bin = await readFileState(join(root, 'b.bin'))
    expect(bin.entry).toMatchObject({ kind: 'file', binary: true, size: 3 })
    expect(bin.text).toBeUndefined()
    expect((await readFileState(join(root, 'link.txt'))).entry).toEqual({ kind: 'symlink' })
    expect((await readFileState(join(root, 'link.txt'))).bytes).toBeUndefined()
    expect((await readFileState(join(root, 'nope.txt'))).entry).toEqual({ kind: 'missing' })
    expect((await readFileState(join(root, 'dir'))).entry).toEqual({ kind: 'dir' })
    expect((await readFileState(join(root, 'fifo'))).entry).toEqual({ kind: 'other' })
  })
})

describe('resolvePeerPath in a batch', () => {
  it('checks each directory once per batch, still refuses a symlinked directory, and notes missing paths', async () => {
    const root = await makeTempDir('ks-fcap-')
    const outside = await makeTempDir('ks-fcap-out-')
    await mkdir(join(root, 'a', 'b'), { recursive: true })
    await symlink(outside, join(root, 'evil'))
    const checkedDirs = new Set<string>()
    const absent = new Set<string>()
    expect(await resolvePeerPath(root, 'a/b/c.txt', { checkedDirs, absent })).toEqual({
      ok: true,
      abs: join(root, 'a', 'b', 'c.txt'),
      parts: ['a', 'b', 'c.txt'],
    })
    expect([...checkedDirs].sort()).toEqual([join(root, 'a'), join(root, 'a', 'b')])
    expect([...absent]).toEqual(['a/b/c.txt'])
    expect(await resolvePeerPath(root, 'evil/passwd', { checkedDirs, absent })).toEqual({ ok: false, reason: 'SYMLINK' })
    expect(checkedDirs.has(join(root, 'evil'))).toBe(false)
  })

  it('leaves the last component to an O_NOFOLLOW read (readNoFollow), which refuses a symlink there', async () => {
    const root = await makeTempDir('ks-fcap-')
    await writeFile(join(root, 'target.txt'), 'secret')
    await symlink(join(root, 'target.txt'), join(root, 'link.txt'))
    const r = await resolvePeerPath(root, 'link.txt', { readNoFollow: true })
    expect(r).toEqual({ ok: true, abs: join(root, 'link.txt'), parts: ['link.txt'] })
    expect((await readFileState(join(root, 'link.txt'))).entry.kind).toBe('symlink')
    expect(await resolvePeerPath(root, 'link.txt')).toEqual({ ok: false, reason: 'SYMLINK' })
  })
})

describe('captures of a batch', () => {
  const definition: FolderDefinition = { include: [], exclude: [], maxFileSize: DEFAULT_MAX_FILE_SIZE, createdBy: 'test', createdAt: 0 }
  const running: FolderEngine[] = []
  afterEach(async () => {
    await Promise.all(running.splice(0).map((e) => e.stop()))
  })

  /** The text a unit's stored updates make (what a peer or a restart gets). */
  function storedText(device: ReturnType<FakeFolderNet['add']>, fileId: string): string {
    const s = [...device.fakeUnits.stored.entries()].find(([k]) => k.includes(folderCollection('sim')) && k.endsWith(fileId))?.[1]
    const doc = newTextFileDoc()
    for (const u of s?.updates ?? []) Y.applyUpdate(doc, u)
    return fileText(doc)
  }

  it('a first scan of more files than one commit takes: every file a unit holding its text, in as many commits as needed', async () => {
    const root = await makeTempDir('ks-fcap-')
    const count = 600
    for (let d = 0; d < 6; d++) await mkdir(join(root, `g${d}`))
    for (let i = 0; i < count; i++) await writeFile(join(root, `g${i % 6}`, `f${i}.json`), `{"i": ${i}}\n`)
    const device = new FakeFolderNet(prng(1)).add('A')
    const commits: { updates: number; records: number }[] = []
    const commit = device.fakeUnits.commit.bind(device.fakeUnits)
    device.fakeUnits.commit = async (collection, updates, records = []) => {
      commits.push({ updates: updates.length, records: records.length })
      return commit(collection, updates, records)
    }
    const engine = new FolderEngine(device, { name: 'sim', root, definition, settleMs: 5 })
    running.push(engine)
    await engine.start()
    const live = [...engine.entries.values()].filter((e) => e.kind !== 'dir')
    expect(live).toHaveLength(count)
    // 256 captured files per commit: 600 files are three commits of their records and units.
    const scan = commits.filter((c) => c.updates > 0)
    expect(scan.map((c) => [c.records, c.updates])).toEqual([
      [256, 256],
      [256, 256],
      [88, 88],
    ])
    for (const e of live) {
      const i = Number(/f(\d+)\.json$/.exec(e.path)?.[1])
      expect(e.hash).toBe(sha(`{"i": ${i}}\n`))
      expect(storedText(device, e.fileId)).toBe(`{"i": ${i}}\n`)
    }
  })

  it('a new file captured twice in one batch (added, then renamed with new content) is one document: the second text, once', async () => {
    const root = await makeTempDir('ks-fcap-')
    const device = new FakeFolderNet(prng(2)).add('A')
    // Not started: no watcher batch of its own, and a failing capture fails this call.
    const engine = new FolderEngine(device, { name: 'sim', root, definition, settleMs: 5 })
    const state = async (path: string, text: string): Promise<FileState> => {
      await writeFile(join(root, path), text)
      const e = await readDiskEntry(join(root, path), DEFAULT_MAX_FILE_SIZE)
      if (e.kind !== 'file') throw new Error('not a file')
      return e
    }
    const first = await state('n.txt', 'one\n')
    const second = await state('m.txt', 'one\ntwo\n')
    await engine.local([
      { kind: 'added', path: 'n.txt', state: first },
      { kind: 'renamed', from: 'n.txt', path: 'm.txt', state: second },
    ])
    const live = [...engine.entries.values()].filter((x) => x.deleted === undefined)
    expect(live.map((x) => [x.path, x.hash])).toEqual([['m.txt', sha('one\ntwo\n')]])
    const fileId = live[0]?.fileId as string
    // The second capture continues the first one's new document: a second new document would hold the text twice.
    expect(storedText(device, fileId)).toBe('one\ntwo\n')
    expect(await engine.docText(fileId)).toBe('one\ntwo\n')
  })
})

describe("peers' records in batches", () => {
  const definition: FolderDefinition = { include: [], exclude: [], maxFileSize: DEFAULT_MAX_FILE_SIZE, createdBy: 'test', createdAt: 0 }
  const running: FolderEngine[] = []
  afterEach(async () => {
    await Promise.all(running.splice(0).map((e) => e.stop()))
  })

  it('a device placing the folder gets every file of a batch of new records, with its content, whatever order records and units arrive in', async () => {
    for (const seed of [3, 4]) {
      const net = new FakeFolderNet(prng(seed))
      const [rootA, rootB] = [await makeTempDir('ks-fcap-a-'), await makeTempDir('ks-fcap-b-')]
      const want = new Map<string, string>()
      for (let i = 0; i < 40; i++) {
        const path = `d${i % 4}/f${i}.yaml`
        want.set(path, `i: ${i}\n`)
        await mkdir(join(rootA, `d${i % 4}`), { recursive: true })
        await writeFile(join(rootA, path), `i: ${i}\n`)
      }
      const a = new FolderEngine(net.add('A'), { name: 'sim', root: rootA, definition, settleMs: 5 })
      const b = new FolderEngine(net.add('B'), { name: 'sim', root: rootB, definition, settleMs: 5 })
      running.push(a, b)
      await a.start()
      await b.start()
      // Every record and unit of A's scan is handed to B at once, in a seeded random order.
      for (let round = 0; round < 50; round++) {
        await a.idle()
        await b.idle()
        if (net.deliver() === 0 && net.deliverable() === 0) break
      }
      await b.idle()
      for (const [path, text] of want) expect(await readFile(join(rootB, path), 'utf8').catch(() => undefined), `seed ${seed}: ${path}`).toBe(text)
      expect((await b.status()).filter((f) => f.state !== 'synced')).toEqual([])
      await Promise.all(running.splice(0).map((e) => e.stop()))
    }
  })
})
