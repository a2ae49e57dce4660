import { mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { setDebugSink } from '../../src/core/debug-log.js'
import { FolderEngine } from '../../src/daemon/folder-engine.js'
import { DEFINITION_KEY, folderCollection } from '../../src/daemon/folder-host.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'
import { FakeFolderNet } from '../helpers/fake-folder-net.js'
import {
  DEFINITION as definition,
  FOLDER_NAME as NAME,
  running,
  seen,
  settle,
  startNodes as nodes,
  stopEngines,
  tree,
  type FolderNode as Node,
} from '../helpers/folder-nodes.js'
import { prng } from '../helpers/memory-mesh.js'

/**
 * The folder engine over real files and an in-memory workspace network (design F2): devices
 * that edit, rename and delete files, with peers' messages delivered in a seeded random order
 * and devices going offline, end with the same manifest and the same files.
 */

// FOLDER_DEBUG=1 prints the engine's debug lines.
if (process.env.FOLDER_DEBUG === '1') setDebugSink((scope, message, err) => console.error(scope, message, err))

afterEach(stopEngines)
afterAll(cleanup)

/** The live manifest as path -> kind (records of deleted files and the definition left out). */
async function manifest(n: Node): Promise<Record<string, unknown>> {
  const all = await n.device.records(folderCollection(NAME))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(all)) if (k !== DEFINITION_KEY) out[k] = v
  return out
}

type SavePattern = (abs: string, text: string) => Promise<void>

const savePatterns: Record<string, SavePattern> = {
  'in place': async (abs, text) => {
    const fh = await open(abs, 'r+').catch(() => open(abs, 'w'))
    await fh.truncate(0)
    await fh.write(text, 0)
    await fh.close()
  },
  'truncate and write in pieces': async (abs, text) => {
    const fh = await open(abs, 'w')
    const half = Math.floor(text.length / 2)
    await fh.write(text.slice(0, half))
    await fh.write(text.slice(half))
    await fh.close()
  },
  'temp file renamed over': async (abs, text) => {
    await writeFile(`${abs}.tmp~save`, text)
    await rename(`${abs}.tmp~save`, abs)
  },
  'vim backup and rename': async (abs, text) => {
    await rename(abs, `${abs}~`).catch(() => undefined)
    const dir = abs.slice(0, abs.lastIndexOf('/'))
    await writeFile(join(dir, '4913'), '')
    await unlink(join(dir, '4913'))
    await writeFile(abs, text)
    await rm(`${abs}~`, { force: true })
  },
}

describe('folder engine over an in-memory workspace', () => {
  it('a file written on A appears on B and C, and a directory too', async () => {
    const net = new FakeFolderNet(prng(1))
    const [a, b, c] = await nodes(net, ['devA', 'devB', 'devC'])
    await mkdir(join(a!.root, 'scenarios/empty'), { recursive: true })
    await writeFile(join(a!.root, 'scenarios/s1.yaml'), 'name: s1\nsteps: 3\n')
    await settle(net, [a!, b!, c!])
    for (const n of [b!, c!]) {
      expect(await readFile(join(n.root, 'scenarios/s1.yaml'), 'utf8')).toBe('name: s1\nsteps: 3\n')
      expect((await tree(n.root))['scenarios/empty/']).toBe('')
    }
    expect(b!.device.events.some((e) => e.event === 'folder:change' && (e.payload as { path: string }).path === 'scenarios/s1.yaml')).toBe(true)
  })

  it.each(Object.keys(savePatterns))('a save by %s is picked up and reaches the peer', async (pattern) => {
    const net = new FakeFolderNet(prng(2))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'notes.txt'), 'one\ntwo\nthree\n')
    await settle(net, [a!, b!])
    await (savePatterns[pattern] as SavePattern)(join(a!.root, 'notes.txt'), 'one\nTWO\nthree\nfour\n')
    await settle(net, [a!, b!])
    expect(await readFile(join(b!.root, 'notes.txt'), 'utf8')).toBe('one\nTWO\nthree\nfour\n')
    // No backup, probe or temp file of the editor crossed over.
    expect(Object.keys(await tree(b!.root)).sort()).toEqual(['notes.txt'])
  })

  it('offline edits of different lines on two devices both survive, without a conflict copy', async () => {
    const net = new FakeFolderNet(prng(3))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'cfg.json'), '{\n  "a": 1,\n  "b": 2,\n  "c": 3\n}\n')
    await settle(net, [a!, b!])
    b!.device.online = false
    await writeFile(join(a!.root, 'cfg.json'), '{\n  "a": 10,\n  "b": 2,\n  "c": 3\n}\n')
    await writeFile(join(b!.root, 'cfg.json'), '{\n  "a": 1,\n  "b": 2,\n  "c": 30\n}\n')
    await settle(net, [a!, b!])
    b!.device.online = true
    await settle(net, [a!, b!])
    for (const n of [a!, b!]) {
      expect(await readFile(join(n.root, 'cfg.json'), 'utf8')).toBe('{\n  "a": 10,\n  "b": 2,\n  "c": 30\n}\n')
      expect(Object.keys(await tree(n.root))).toEqual(['cfg.json'])
    }
  })

  it('a device whose engine was stopped captures its offline edits at start, rebased: both edits survive', async () => {
    const net = new FakeFolderNet(prng(9))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'notes.txt'), 'one\ntwo\nthree\nfour\n')
    await settle(net, [a!, b!])
    await b!.engine.stop()
    running.splice(running.indexOf(b!.engine), 1)
    b!.device.online = false
    await writeFile(join(b!.root, 'notes.txt'), 'one\ntwo\nthree\nFOUR from b\n')
    await writeFile(join(a!.root, 'notes.txt'), 'ONE from a\ntwo\nthree\nfour\n')
    await settle(net, [a!])
    b!.device.online = true
    net.deliver() // A's change reaches B's store before B's engine starts
    const again = new FolderEngine(b!.device, { name: NAME, root: b!.root, definition, settleMs: 5 })
    await again.start()
    running.push(again)
    const b2 = { ...b!, engine: again }
    await settle(net, [a!, b2])
    for (const n of [a!, b2]) expect(await tree(n.root)).toEqual({ 'notes.txt': 'ONE from a\ntwo\nthree\nFOUR from b\n' })
  })

  it('JSON that the merge would break keeps the latest version and the other as a conflict copy on both devices', async () => {
    const net = new FakeFolderNet(prng(4))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'p.json'), '{"a": 1}\n')
    await settle(net, [a!, b!])
    b!.device.online = false
    await writeFile(join(a!.root, 'p.json'), '{"a": "x"}\n')
    await settle(net, [a!, b!])
    await writeFile(join(b!.root, 'p.json'), '{"a": true}\n')
    await settle(net, [a!, b!])
    b!.device.online = true
    await settle(net, [a!, b!])
    const ta = await tree(a!.root)
    expect(ta).toEqual(await tree(b!.root))
    expect(ta['p.json']).toBe('{"a": true}\n')
    const copies = Object.keys(ta).filter((p) => p.includes('.conflict-'))
    expect(copies).toHaveLength(1)
    expect(ta[copies[0] as string]).toBe('{"a": "x"}\n')
    const status = await a!.engine.status()
    expect(status.find((f) => f.path === 'p.json')?.state).toBe('conflict')
    expect(a!.device.events.some((e) => e.event === 'sync:conflict')).toBe(true)
  })

  it('a rename keeps the record (same fileId), and a delete goes to the trash of the other device', async () => {
    const net = new FakeFolderNet(prng(5))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'old.md'), '# notes\n')
    await settle(net, [a!, b!])
    const before = Object.keys(await manifest(a!))
    await rename(join(a!.root, 'old.md'), join(a!.root, 'new.md'))
    await settle(net, [a!, b!])
    expect(await tree(b!.root)).toEqual({ 'new.md': '# notes\n' })
    expect(Object.keys(await manifest(b!))).toEqual(before)
    await rm(join(a!.root, 'new.md'))
    await settle(net, [a!, b!])
    expect(await tree(b!.root)).toEqual({})
    expect((await b!.engine.trash.list()).map((t) => t.path)).toEqual(['new.md'])
  })

  it('an edit made offline against a delete wins: the file comes back on the deleting device', async () => {
    const net = new FakeFolderNet(prng(6))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'd.txt'), 'v1\n')
    await settle(net, [a!, b!])
    b!.device.online = false
    await rm(join(a!.root, 'd.txt'))
    await writeFile(join(b!.root, 'd.txt'), 'v2 edited\n')
    await settle(net, [a!, b!])
    b!.device.online = true
    await settle(net, [a!, b!])
    expect(await tree(a!.root)).toEqual({ 'd.txt': 'v2 edited\n' })
    expect(await tree(b!.root)).toEqual({ 'd.txt': 'v2 edited\n' })
  })

  it('a binary file included on purpose syncs as a blob; changed on both sides, the newest stays and the other is kept beside it', async () => {
    const net = new FakeFolderNet(prng(10))
    const [a, b] = await nodes(net, ['devA', 'devB'], { ...definition, include: ['*.bin'] })
    const v1 = Buffer.from([0, 1, 2, 3, 255, 0, 7])
    await writeFile(join(a!.root, 'data.bin'), v1)
    await settle(net, [a!, b!])
    expect(Buffer.compare(await readFile(join(b!.root, 'data.bin')), v1)).toBe(0)
    b!.device.online = false
    await writeFile(join(a!.root, 'data.bin'), Buffer.from([0, 9, 9, 0]))
    await settle(net, [a!, b!])
    await writeFile(join(b!.root, 'data.bin'), Buffer.from([0, 8, 8, 8, 0]))
    await settle(net, [a!, b!])
    b!.device.online = true
    await settle(net, [a!, b!])
    for (const n of [a!, b!]) {
      const names = (await readdir(n.root)).filter((f) => f !== '.kitsync').sort()
      expect(names).toHaveLength(2)
      expect(Buffer.compare(await readFile(join(n.root, 'data.bin')), Buffer.from([0, 8, 8, 8, 0]))).toBe(0)
      const copy = names.find((f) => f.startsWith('data.conflict-')) as string
      expect(Buffer.compare(await readFile(join(n.root, copy)), Buffer.from([0, 9, 9, 0]))).toBe(0)
    }
  })

  it('a hostile path in a peer record is refused: nothing is written outside the folder', async () => {
    const net = new FakeFolderNet(prng(7))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    const outside = await makeTempDir('ks-out-')
    for (const path of ['../escape.txt', `${outside}/abs.txt`, '.kitsync/trash/x', 'a/../../b']) {
      a!.device.writeLocal(folderCollection(NAME), [
        { key: `hostile${path.length}aaaaaaaaaa`.slice(0, 22), fields: { path, kind: 'dir', size: 0, hash: '', x: false } },
      ])
    }
    await settle(net, [a!, b!])
    expect(await readdir(outside)).toEqual([])
    expect(await tree(b!.root)).toEqual({})
  })

  it('two devices that create one path offline end with one file, or with one conflict copy for different content', async () => {
    const net = new FakeFolderNet(prng(8))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    b!.device.online = false
    await writeFile(join(a!.root, 'same.txt'), 'same\n')
    await writeFile(join(b!.root, 'same.txt'), 'same\n')
    await writeFile(join(a!.root, 'x.json'), '{"from": "a"}\n')
    await settle(net, [a!, b!])
    await writeFile(join(b!.root, 'x.json'), '{"from": "b"}\n')
    await settle(net, [a!, b!])
    b!.device.online = true
    await settle(net, [a!, b!])
    const ta = await tree(a!.root)
    expect(await tree(b!.root)).toEqual(ta)
    expect(ta['same.txt']).toBe('same\n')
    expect(ta['x.json']).toBe('{"from": "b"}\n')
    const copies = Object.keys(ta).filter((p) => p.startsWith('x.conflict-devA-'))
    expect(copies.map((p) => ta[p])).toEqual(['{"from": "a"}\n'])
    expect(Object.keys(ta)).toHaveLength(3)
  })

  it.each([11, 12, 13, 14, 15])('seed %i: three devices with random edits, new files, renames, deletes and partitions converge', async (seed) => {
    const random = prng(seed)
    const net = new FakeFolderNet(prng(seed * 7))
    const all = await nodes(net, ['devA', 'devB', 'devC'])
    await mkdir(join(all[0]!.root, 'dir'), { recursive: true })
    for (const p of ['a.txt', 'b.yaml', 'dir/c.md']) await writeFile(join(all[0]!.root, p), `first line of ${p}\n`)
    await settle(net, all)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T
    for (let round = 0; round < 6; round++) {
      for (const n of all) n.device.online = random() > 0.3
      for (const n of all) {
        const files = Object.keys(await tree(n.root)).filter((p) => !p.endsWith('/'))
        const op = random()
        const me = n.device.deviceId
        if (files.length === 0 || op < 0.15) {
          // New files get names of their own device and round: two devices never make one path.
          await writeFile(join(n.root, pick(['', 'dir/']) + `new-${me}-${round}.txt`), `made on ${me}\n`)
        } else if (op < 0.7) {
          const path = pick(files)
          const lines = (await readFile(join(n.root, path), 'utf8')).split('\n').filter((l) => l !== '')
          lines.splice(Math.floor(random() * (lines.length + 1)), 0, `line ${me} r${round}`)
          await (pick(Object.values(savePatterns)) as SavePattern)(join(n.root, path), lines.join('\n') + '\n')
        } else if (op < 0.85) {
          await rename(join(n.root, pick(files)), join(n.root, `moved-${me}-${round}.txt`))
        } else await rm(join(n.root, pick(files)))
        await seen([n])
        await n.engine.idle()
      }
      await settle(net, all)
    }
    for (const n of all) n.device.online = true
    await settle(net, all)
    const first = await tree(all[0]!.root)
    for (const n of all.slice(1)) expect(await tree(n.root)).toEqual(first)
    const m = await manifest(all[0]!)
    for (const n of all.slice(1)) expect(await manifest(n)).toEqual(m)
  })
})
