import { createHash } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { setDebugSink } from '../../src/core/debug-log.js'
import { writeFileAtomic } from '../../src/folder/atomic-write.js'
import { readDiskEntry } from '../../src/folder/file-state.js'
import { DEFINITION_KEY, folderCollection } from '../../src/daemon/folder-host.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'
import { FakeFolderNet } from '../helpers/fake-folder-net.js'
import { FOLDER_NAME as NAME, settle, startNodes as nodes, stopEngines, tree, type FolderNode as Node } from '../helpers/folder-nodes.js'
import { prng } from '../helpers/memory-mesh.js'

/**
 * A user's save that lands right after the folder layer wrote a peer's version of the same file
 * (the case seen in the folder e2e tests: B's save of a file it had just received was never
 * captured). The save is made at a fixed point of the write, not by timing: this file's mock of
 * fs/promises' rename runs `afterRename` right after the rename of the engine's temp file over
 * the target, before the write looks at what it left there.
 */

let afterRename: ((to: string) => void) | undefined

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>()
  const rename = async (from: string, to: string): Promise<void> => {
    await real.rename(from, to)
    if (from.includes('.kitsync-tmp-')) afterRename?.(to)
  }
  return { ...real, rename, default: { ...real, rename } }
})

if (process.env.FOLDER_DEBUG === '1') setDebugSink((scope, message, err) => console.error(scope, message, err))

afterEach(async () => {
  afterRename = undefined
  await stopEngines()
})
afterAll(cleanup)

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** The live records of the folder as path -> size (deleted and merged ones left out). */
async function live(n: Node): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(await n.device.records(folderCollection(NAME)))) {
    const r = v as { path?: string; size?: number; deleted?: unknown; from?: unknown }
    if (k === DEFINITION_KEY || r.deleted != null || r.from != null || typeof r.path !== 'string') continue
    out[r.path] = r.size as number
  }
  return out
}

describe("a local save right after a peer's write of the same file", () => {
  it.each([
    ['of another size', 'the user saved this\n'],
    ['of the same size', 'THE PEER WROTE\n'],
    ['that deletes it', undefined],
  ])('writeFileAtomic reports what it wrote, not a save %s that landed after its rename', async (_what, save) => {
    const root = await makeTempDir('ks-race-')
    const abs = join(root, 'f.txt')
    const data = new TextEncoder().encode('the peer wrote\n')
    afterRename = (to) => {
      afterRename = undefined
      if (save === undefined) rmSync(to)
      else writeFileSync(to, save)
    }
    const r = await writeFileAtomic(abs, data, { expected: 'absent', executable: false })
    expect(afterRename).toBeUndefined()
    expect(r.status).toBe('written')
    if (r.status !== 'written') return
    expect(r.state).toMatchObject({ kind: 'file', size: data.byteLength, hash: sha(data) })
    // What the watcher does with the state it is given: look again, and see the save as a change.
    const now = await readDiskEntry(abs, Number.MAX_SAFE_INTEGER, r.state)
    if (save === undefined) expect(now.kind).toBe('missing')
    else expect(now).toMatchObject({ kind: 'file', hash: sha(Buffer.from(save)) })
  })

  it.each([
    ['of another size', '# made on C\nedited on B, longer\n'],
    ['of the same size', '# made on C\nEDITED ON B\n'],
  ])('a save %s is captured and reaches the other device', async (_what, save) => {
    const net = new FakeFolderNet(prng(21))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'from-c.md'), '# made on C\n')
    await settle(net, [a!, b!])
    // A's edit reaches B; B's user saves the file the moment B's write of A's edit is in place.
    const target = join(b!.root, 'from-c.md')
    afterRename = (to) => {
      if (to !== target) return
      afterRename = undefined
      writeFileSync(to, save)
    }
    await writeFile(join(a!.root, 'from-c.md'), '# made on C\nedited on A\n')
    await settle(net, [a!, b!])
    expect(afterRename).toBeUndefined() // the save was made, inside B's write
    expect(await tree(b!.root)).toEqual({ 'from-c.md': save })
    expect(await tree(a!.root)).toEqual({ 'from-c.md': save })
    for (const n of [a!, b!]) expect(await live(n)).toEqual({ 'from-c.md': Buffer.byteLength(save) })
    const status = await b!.engine.status()
    expect(status).toEqual([expect.objectContaining({ path: 'from-c.md', state: 'synced', size: Buffer.byteLength(save) })])
  })

  it('a conflict copy of JSON is shared: one live record at its path on both devices, the same files on both', async () => {
    const net = new FakeFolderNet(prng(22))
    const [a, b] = await nodes(net, ['devA', 'devB'])
    await writeFile(join(a!.root, 'p.json'), '{"a": 1}\n')
    await settle(net, [a!, b!])
    b!.device.online = false
    await writeFile(join(a!.root, 'p.json'), '{"a": true}\n')
    await settle(net, [a!, b!])
    await writeFile(join(b!.root, 'p.json'), '{"a": "x"}\n')
    await settle(net, [a!, b!])
    b!.device.online = true
    await settle(net, [a!, b!])
    const ta = await tree(a!.root)
    expect(await tree(b!.root)).toEqual(ta)
    const copies = Object.keys(ta).filter((p) => p.includes('.conflict-'))
    expect(copies).toHaveLength(1)
    const copy = copies[0] as string
    for (const n of [a!, b!]) {
      const records = await live(n)
      expect(Object.keys(records).sort()).toEqual([copy, 'p.json'].sort())
      expect(records[copy]).toBe(Buffer.byteLength(ta[copy] as string))
      const status = await n.engine.status()
      expect(status.find((f) => f.path === copy)?.state).toBe('conflict')
    }
  })
})
