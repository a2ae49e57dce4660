import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_MAX_FILE_SIZE } from '../../src/core/folder-selection.js'
import { FolderEngine } from '../../src/daemon/folder-engine.js'
import type { FolderDefinition } from '../../src/daemon/folder-host.js'
import { makeTempDir } from './cli.js'
import type { FakeDevice, FakeFolderNet } from './fake-folder-net.js'

/**
 * Folder engines over real temp folders and a FakeFolderNet, for the engine's unit tests: start
 * them, wait until every watcher has seen its folder and every message is handed over, read a
 * folder back. Each test file stops what it started with `stopEngines()` in its afterEach.
 */

export const FOLDER_NAME = 'sim'
export const DEFINITION: FolderDefinition = { include: [], exclude: [], maxFileSize: DEFAULT_MAX_FILE_SIZE, createdBy: 'test', createdAt: 0 }

export interface FolderNode {
  device: FakeDevice
  engine: FolderEngine
  root: string
}

/** Engines started and not stopped yet (a test that stops one itself takes it out). */
export const running: FolderEngine[] = []

export async function stopEngines(): Promise<void> {
  await Promise.all(running.splice(0).map((e) => e.stop()))
}

/** One device, temp folder and started engine per id. */
export async function startNodes(net: FakeFolderNet, ids: string[], definition: FolderDefinition = DEFINITION): Promise<FolderNode[]> {
  const out: FolderNode[] = []
  for (const id of ids) {
    const device = net.add(id)
    const root = await makeTempDir('ks-fold-')
    const engine = new FolderEngine(device, { name: FOLDER_NAME, root, definition, settleMs: 5 })
    await engine.start()
    running.push(engine)
    out.push({ device, engine, root })
  }
  return out
}

/** path -> content of every file under root, and `dir/` -> '' for each directory; .kitsync/ left out. */
export async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`
      if (p === '.kitsync') continue
      if (e.isDirectory()) {
        out[`${p}/`] = ''
        await walk(p)
      } else out[p] = await readFile(join(root, p), 'utf8')
    }
  }
  await walk('')
  return out
}

/** Paths of the files under root (.kitsync/ left out), while engines may be writing: what vanishes meanwhile is left out. */
async function filesUnder(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => [])
  const out: string[] = []
  for (const e of entries) {
    const p = rel === '' ? e.name : `${rel}/${e.name}`
    if (p === '.kitsync') continue
    if (e.isDirectory()) out.push(...(await filesUnder(root, p)))
    else out.push(p)
  }
  return out
}

/**
 * Until every engine's watcher has seen what its folder holds now (by hash, with a deadline):
 * inotify's events may not have arrived when a test's write returns.
 */
export async function seen(all: FolderNode[]): Promise<void> {
  const deadline = Date.now() + 10_000
  for (const n of all) {
    for (;;) {
      const files = await filesUnder(n.root)
      const known = n.engine.watcher.snapshot()
      let same = files.length === known.size
      for (const p of files) {
        const bytes = await readFile(join(n.root, p)).catch(() => undefined)
        if (bytes === undefined || known.get(p)?.hash !== createHash('sha256').update(bytes).digest('hex')) same = false
      }
      if (same) break
      if (Date.now() > deadline) throw new Error(`${n.device.deviceId}: the watcher did not see the folder's files in 10 s`)
      await new Promise((r) => setTimeout(r, 5))
    }
  }
}

/** Until nothing moves: every watcher caught up, every online engine idle and every deliverable message handed over. */
export async function settle(net: FakeFolderNet, all: FolderNode[]): Promise<void> {
  for (let round = 0; round < 200; round++) {
    await seen(all)
    for (const n of all) if (n.device.online) await n.engine.idle()
    if (net.deliver() === 0) {
      await seen(all)
      for (const n of all) if (n.device.online) await n.engine.idle()
      if (net.deliverable() === 0) return
    }
  }
  throw new Error('the devices did not settle in 200 rounds')
}
