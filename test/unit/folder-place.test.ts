import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type * as Y from 'yjs'
import { FolderEngine } from '../../src/daemon/folder-engine.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'
import { FakeFolderNet, type FakeDevice } from '../helpers/fake-folder-net.js'
import { DEFINITION, FOLDER_NAME } from '../helpers/folder-nodes.js'
import { prng } from '../helpers/memory-mesh.js'

/**
 * A device that places a shared folder (`folder add`, FolderEngine.start with `background`):
 * the start resolves once the folder is watched and its disk captured; the workspace's files
 * are then written by a queued job, each counted as incoming until it is on disk. Without
 * `background` (a peer's start) the start resolves once they are written, as before.
 */

const running: FolderEngine[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()))
  await cleanup()
})

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  )

/** A shares 20 files; B holds their manifest and units (delivered) before its engine starts. B's document loads wait for `release`. */
async function placed(): Promise<{ b: FakeDevice; rootB: string; want: Record<string, string>; release: () => void }> {
  const net = new FakeFolderNet(prng(7))
  const a = net.add('devA')
  const b = net.add('devB')
  const rootA = await makeTempDir('ks-place-a-')
  const want: Record<string, string> = {}
  for (let i = 0; i < 20; i++) {
    const path = `group${i % 3}/file${i}.json`
    want[path] = `{ "file": ${i} }\n`
    await mkdir(join(rootA, `group${i % 3}`), { recursive: true })
    await writeFile(join(rootA, path), want[path])
  }
  const engineA = new FolderEngine(a, { name: FOLDER_NAME, root: rootA, definition: DEFINITION, settleMs: 5 })
  await engineA.start()
  running.push(engineA)
  await engineA.idle()
  net.deliver()
  let release = (): void => undefined
  const gate = new Promise<void>((r) => (release = r))
  const units = b.fakeUnits
  const open = units.open.bind(units)
  units.open = async (collection: string, unit: string, make: () => Y.Doc): Promise<Y.Doc> => {
    await gate
    return open(collection, unit, make)
  }
  return { b, rootB: await makeTempDir('ks-place-b-'), want, release }
}

describe('placing a shared folder on a device', () => {
  it('in the background: the start resolves before the files are written; each is incoming until it is on disk', async () => {
    const { b, rootB, want, release } = await placed()
    const engine = new FolderEngine(b, { name: FOLDER_NAME, root: rootB, definition: DEFINITION, settleMs: 5 })
    running.push(engine)
    // Resolves although no document can load yet: nothing of the placement is awaited.
    await engine.start({ background: true })
    expect(engine.totals().files).toBe(20)
    for (const path of Object.keys(want)) expect(await exists(join(rootB, path)), path).toBe(false)
    const ids = [...engine.entries.values()].filter((e) => e.kind === 'text').map((e) => e.fileId)
    expect(ids).toHaveLength(20)
    for (const id of ids) expect(engine.incoming.has(id), id).toBe(true)
    release()
    await engine.idle()
    for (const [path, text] of Object.entries(want)) expect(await readFile(join(rootB, path), 'utf8'), path).toBe(text)
    expect(engine.incoming.size).toBe(0)
    const status = await engine.status()
    expect(status.filter((s) => s.kind === 'text').map((s) => s.state)).toEqual(Array(20).fill('synced'))
  })

  it('not in the background (a peer starting): the start resolves once every file is on disk', async () => {
    const { b, rootB, want, release } = await placed()
    const engine = new FolderEngine(b, { name: FOLDER_NAME, root: rootB, definition: DEFINITION, settleMs: 5 })
    running.push(engine)
    let started = false
    const starting = engine.start().then(() => (started = true))
    await new Promise((r) => setTimeout(r, 50))
    expect(started).toBe(false)
    release()
    await starting
    for (const [path, text] of Object.entries(want)) expect(await readFile(join(rootB, path), 'utf8'), path).toBe(text)
    expect(engine.incoming.size).toBe(0)
  })
})
