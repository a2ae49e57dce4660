/**
 * Two devices' copies of a folder on real disks, their text files' documents exchanged the way
 * a sync session does (state vectors, then what the other lacks): edits made with real file
 * writes while "offline", picked up by the watchers, captured, merged and written back.
 */
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { conflictPath } from '../../src/core/folder-conflicts.js'
import { Hlc } from '../../src/core/hlc.js'
import { readDiskEntry } from '../../src/folder/file-state.js'
import { fileText, newTextFileDoc } from '../../src/core/folder-text-doc.js'
import { CaptureLedger } from '../../src/folder/capture-ledger.js'
import { FolderWatcher, type FolderChange } from '../../src/folder/folder-watcher.js'
import { applyRemoteBinary, applyRemoteText, captureIfChanged, writeTextToDisk, type FolderContext } from '../../src/folder/incoming.js'
import { FolderTrash } from '../../src/folder/trash.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

afterAll(cleanup)
const DEADLINE_MS = 10_000

interface Device {
  name: string
  root: string
  watcher: FolderWatcher
  ctx: FolderContext
  docs: Map<string, Y.Doc>
  seen: FolderChange[]
}

const devices: Device[] = []
afterEach(async () => {
  for (const d of devices.splice(0)) await d.watcher.stop()
})

/** A device whose folder holds `files`, each captured into a document made from `from`'s (or anew). */
async function device(name: string, files: Record<string, string>, from?: Device): Promise<Device> {
  const root = await makeTempDir(`ks-merge-${name}-`)
  for (const [p, text] of Object.entries(files)) await writeFile(join(root, p), text)
  const watcher = new FolderWatcher(root)
  const seen: FolderChange[] = []
  watcher.on('changes', (b) => seen.push(...b))
  await watcher.start()
  const hlc = new Hlc(name)
  const ctx: FolderContext = {
    root,
    device: name,
    stamp: () => hlc.now(),
    observe: (s) => hlc.observe(s),
    states: new CaptureLedger(watcher),
    trash: new FolderTrash(root),
  }
  const docs = new Map<string, Y.Doc>()
  for (const p of Object.keys(files)) {
    const doc = newTextFileDoc()
    if (from !== undefined) Y.applyUpdate(doc, Y.encodeStateAsUpdate(from.docs.get(p) as Y.Doc))
    await captureIfChanged(ctx, p, doc)
    docs.set(p, doc)
  }
  const d = { name, root, watcher, ctx, docs, seen }
  devices.push(d)
  return d
}

/** Wait until the watcher reported a change of `path`, then capture it (what the folder engine does on 'changes'). */
async function captureLocalSave(d: Device, path: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS
  while (!d.seen.some((c) => c.path === path)) {
    if (Date.now() > deadline) throw new Error(`${d.name}: no change of ${path} seen`)
    await new Promise((r) => setTimeout(r, 5))
  }
  d.seen.splice(0)
  expect(await captureIfChanged(d.ctx, path, d.docs.get(path) as Y.Doc)).toBe(true)
}

/** One sync round of one file between two devices, both ways. */
async function sync(a: Device, b: Device, path: string): Promise<Awaited<ReturnType<typeof applyRemoteText>>[]> {
  const da = a.docs.get(path) as Y.Doc
  const db = b.docs.get(path) as Y.Doc
  const toB = Y.encodeStateAsUpdate(da, Y.encodeStateVector(db))
  const toA = Y.encodeStateAsUpdate(db, Y.encodeStateVector(da))
  return [await applyRemoteText(b.ctx, path, db, toB), await applyRemoteText(a.ctx, path, da, toA)]
}

const read = (d: Device, p: string): Promise<string> => readFile(join(d.root, p), 'utf8')

describe('two devices, one folder', () => {
  it('edits of different lines made offline are both in the file on both devices, with no conflict copy', async () => {
    const base = 'alpha\nbeta\ngamma\ndelta\nepsilon\n'
    const a = await device('devA', { 'notes.md': base })
    const b = await device('devB', { 'notes.md': base }, a)
    await writeFile(join(a.root, 'notes.md'), base.replace('beta', 'BETA (edited on A)'))
    await writeFile(join(b.root, 'notes.md'), base.replace('delta', 'DELTA (edited on B)'))
    await captureLocalSave(a, 'notes.md')
    await captureLocalSave(b, 'notes.md')
    await sync(a, b, 'notes.md')
    const expected = 'alpha\nBETA (edited on A)\ngamma\nDELTA (edited on B)\nepsilon\n'
    expect(await read(a, 'notes.md')).toBe(expected)
    expect(await read(b, 'notes.md')).toBe(expected)
    expect(await readdir(a.root)).toEqual(['.kitsync', 'notes.md'])
    expect((await readdir(b.root)).filter((n) => n.includes('conflict'))).toEqual([])
  })

  it('edits of the same line both survive, in the same order on both devices', async () => {
    const a = await device('devA', { 'todo.txt': 'buy milk\n' })
    const b = await device('devB', { 'todo.txt': 'buy milk\n' }, a)
    await writeFile(join(a.root, 'todo.txt'), 'buy oat milk\n')
    await writeFile(join(b.root, 'todo.txt'), 'buy milk today\n')
    await captureLocalSave(a, 'todo.txt')
    await captureLocalSave(b, 'todo.txt')
    await sync(a, b, 'todo.txt')
    expect(await read(a, 'todo.txt')).toBe('buy oat milk today\n')
    expect(await read(b, 'todo.txt')).toBe('buy oat milk today\n')
  })

  it('JSON that the merge would break: the later edit wins on both, the other is saved beside it', async () => {
    const base = '{\n  "rate": 0.03,\n  "years": 10\n}\n'
    const a = await device('devA', { 'scenario.json': base })
    const b = await device('devB', { 'scenario.json': base }, a)
    const textA = base.replace('0.03', '"low"')
    const textB = base.replace('0.03', '[0.02, 0.04]')
    await writeFile(join(a.root, 'scenario.json'), textA)
    await captureLocalSave(a, 'scenario.json')
    await writeFile(join(b.root, 'scenario.json'), textB) // captured after A's: B's stamp is later
    await captureLocalSave(b, 'scenario.json')
    const [atB, atA] = await sync(a, b, 'scenario.json')
    expect(atA?.merge).toMatchObject({ kind: 'conflict', winner: 'remote' })
    expect(atB?.merge).toMatchObject({ kind: 'conflict', winner: 'local' })
    expect(await read(a, 'scenario.json')).toBe(textB)
    expect(await read(b, 'scenario.json')).toBe(textB)
    const conflictA = (await readdir(a.root)).filter((n) => n.includes('.conflict-'))
    const conflictB = (await readdir(b.root)).filter((n) => n.includes('.conflict-'))
    expect(conflictA).toHaveLength(1)
    expect(conflictA[0]).toMatch(/^scenario\.conflict-devA-\d{8}T\d{6}Z\.json$/)
    expect(conflictB).toEqual(conflictA)
    expect(await read(a, conflictA[0] as string)).toBe(textA)
    expect(await read(b, conflictA[0] as string)).toBe(textA)
    // The winner's repair reaches the loser: both documents hold the winner's text, once.
    await sync(a, b, 'scenario.json')
    expect(fileText(a.docs.get('scenario.json') as Y.Doc)).toBe(textB)
    expect(fileText(b.docs.get('scenario.json') as Y.Doc)).toBe(textB)
    // The loser edits on: its save applies on top of the winner's text, nothing is doubled.
    await writeFile(join(a.root, 'scenario.json'), textB.replace('10', '20'))
    await captureLocalSave(a, 'scenario.json')
    await sync(a, b, 'scenario.json')
    expect(JSON.parse(await read(b, 'scenario.json'))).toEqual({ rate: [0.02, 0.04], years: 20 })
    expect(await read(a, 'scenario.json')).toBe(await read(b, 'scenario.json'))
  })

  it('a local save not captured yet when a peer update arrives is merged, not overwritten', async () => {
    const base = 'one\ntwo\nthree\n'
    const a = await device('devA', { 'f.txt': base })
    const b = await device('devB', { 'f.txt': base }, a)
    await writeFile(join(a.root, 'f.txt'), 'one (A)\ntwo\nthree\n')
    await captureLocalSave(a, 'f.txt')
    // B saves, and the peer's update is applied before B's watcher change is handled.
    await writeFile(join(b.root, 'f.txt'), 'one\ntwo\nthree (B)\n')
    await sync(a, b, 'f.txt')
    expect(await read(b, 'f.txt')).toBe('one (A)\ntwo\nthree (B)\n')
    await sync(a, b, 'f.txt')
    expect(await read(a, 'f.txt')).toBe('one (A)\ntwo\nthree (B)\n')
  })

  it('a save that lands between the check and the write is captured first (changed-under-us), then written merged', async () => {
    const base = 'x\ny\nz\n'
    const a = await device('devA', { 'g.txt': base })
    const doc = a.docs.get('g.txt') as Y.Doc
    // The document moves on (a peer's edit), and the file is saved locally before it is written out.
    doc.getText('text').insert(0, 'from peer\n')
    await writeFile(join(a.root, 'g.txt'), 'x\ny\nz (local)\n')
    const out = await writeTextToDisk(a.ctx, 'g.txt', doc)
    expect(out.capturedFirst).toBe(1)
    expect(out.result.status).toBe('written')
    expect(await read(a, 'g.txt')).toBe('from peer\nx\ny\nz (local)\n')
    const trash = await (a.ctx.trash as FolderTrash).list()
    expect(trash.map((e) => e.reason)).toEqual(['overwritten'])
  })

  it("a binary: a newer version from a peer replaces it (old one to the trash); over an uncaptured local change, the local one stays and the peer's is the backup", async () => {
    const a = await device('devA', {})
    await writeFile(join(a.root, 'logo.bin'), Buffer.from([1, 2, 3, 0]))
    const state = await readDiskEntry(join(a.root, 'logo.bin'), 1 << 20)
    if (state.kind !== 'file') throw new Error('no file')
    await a.ctx.states.hold('logo.bin', async () => ({ state }))
    const peer = { device: 'devB', stamp: new Hlc('devB').now() }
    const first = await applyRemoteBinary(a.ctx, 'logo.bin', Buffer.from([9, 9, 0]), peer)
    expect(first.status).toBe('written')
    expect([...(await readFile(join(a.root, 'logo.bin')))]).toEqual([9, 9, 0])
    expect((await (a.ctx.trash as FolderTrash).list()).map((e) => [e.path, e.reason])).toEqual([['logo.bin', 'overwritten']])
    // A local change not captured yet, then another version from the peer.
    await writeFile(join(a.root, 'logo.bin'), Buffer.from([7, 0, 7]))
    const second = await applyRemoteBinary(a.ctx, 'logo.bin', Buffer.from([5, 0]), { device: 'devB', stamp: new Hlc('devB').now() })
    expect(second).toMatchObject({ status: 'kept-local' })
    expect([...(await readFile(join(a.root, 'logo.bin')))]).toEqual([7, 0, 7])
    const backup = second.status === 'kept-local' ? second.backup : ''
    expect(backup).toMatch(/^logo\.conflict-devB-\d{8}T\d{6}Z\.bin$/)
    expect([...(await readFile(join(a.root, backup)))]).toEqual([5, 0])
    // A peer stamp from ahead of this device's clock (beyond what it observed) wins; the local version is kept beside it.
    await writeFile(join(a.root, 'logo.bin'), Buffer.from([6, 0, 6]))
    const ahead = { device: 'devB', stamp: `${(Date.now() + 3_600_000).toString(36).padStart(9, '0')}.0000.devB` }
    const third = await applyRemoteBinary({ ...a.ctx, observe: () => undefined }, 'logo.bin', Buffer.from([4, 0]), ahead)
    expect(third).toMatchObject({ status: 'written' })
    expect([...(await readFile(join(a.root, 'logo.bin')))]).toEqual([4, 0])
    const kept = third.status === 'written' ? (third.backup ?? '') : ''
    expect(kept).toMatch(/^logo\.conflict-devA-\d{8}T\d{6}Z\.bin$/)
    expect([...(await readFile(join(a.root, kept)))]).toEqual([6, 0, 6])
  })

  it('a conflict copy never replaces another file that took its name: the next free name is used', async () => {
    const a = await device('devA', {})
    await writeFile(join(a.root, 'data.bin'), Buffer.from([1, 0]))
    const state = await readDiskEntry(join(a.root, 'data.bin'), 1 << 20)
    if (state.kind !== 'file') throw new Error('no file')
    await a.ctx.states.hold('data.bin', async () => ({ state }))
    await writeFile(join(a.root, 'data.bin'), Buffer.from([2, 0])) // local, not captured
    const remote = { device: 'devB', stamp: new Hlc('devB').now() }
    const taken = conflictPath('data.bin', remote)
    await writeFile(join(a.root, taken), 'somebody else')
    const r = await applyRemoteBinary(a.ctx, 'data.bin', Buffer.from([3, 0]), remote)
    expect(r).toEqual({ status: 'kept-local', backup: taken.replace(/\.bin$/, '-2.bin') })
    expect(await readFile(join(a.root, taken), 'utf8')).toBe('somebody else')
    expect([...(await readFile(join(a.root, taken.replace(/\.bin$/, '-2.bin'))))]).toEqual([3, 0])
  })

  it("a hostile peer's paths are refused before anything is written, inside or outside the folder", async () => {
    const a = await device('devA', {})
    const outside = await makeTempDir('ks-merge-outside-')
    await symlink(outside, join(a.root, 'docs'))
    await mkdir(join(a.root, 'real'))
    const doc = newTextFileDoc()
    doc.getText('text').insert(0, 'pwned\n')
    const update = Y.encodeStateAsUpdate(doc)
    for (const path of [
      '../escape.txt',
      '/tmp/escape.txt',
      'docs/escape.txt',
      'real/../../escape.txt',
      '.kitsync/trash/x',
      '.git/hooks/pre-commit',
      'a\\..\\b',
    ]) {
      await expect(applyRemoteText(a.ctx, path, newTextFileDoc(), update)).rejects.toMatchObject({ code: 'INVALID_NAME' })
      await expect(applyRemoteBinary(a.ctx, path, Buffer.from('x'), { device: 'devB', stamp: new Hlc('devB').now() })).rejects.toMatchObject({
        code: 'INVALID_NAME',
      })
    }
    expect(await readdir(outside)).toEqual([])
    expect((await readdir(a.root)).sort()).toEqual(['docs', 'real'])
    expect(await readdir(join(a.root, 'real'))).toEqual([])
  })
})
