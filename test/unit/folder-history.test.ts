import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import { readRecordHistory } from '../../dist/store/history-rows.js'
import { isKitsyncError } from '../../src/core/errors.js'
import { DEFAULT_MAX_FILE_SIZE } from '../../src/core/folder-selection.js'
import { fileVersions, pickVersion, type ManifestVersionRow } from '../../src/core/folder-versions.js'
import { nodeTagOf } from '../../src/core/hlc.js'
import type { JsonValue } from '../../src/core/json.js'
import { FolderEngine } from '../../src/daemon/folder-engine.js'
import { fileHistory, restoreFile } from '../../src/daemon/folder-history.js'
import { folderCollection, type FolderDefinition } from '../../src/daemon/folder-host.js'
import { cleanup, makeHome, makeTempDir, waitUntil } from '../helpers/cli.js'
import { FakeFolderNet } from '../helpers/fake-folder-net.js'
import { prng } from '../helpers/memory-mesh.js'

/**
 * File history (daemon/folder-history.ts): the versions of a file from its manifest record's
 * history entries, which version `restore` picks, the entries a real workspace derives for
 * `_folder.NAME` (one per manifest write, pruned by the retention), and the changed-under-us
 * refusal of a restore over an edit the engine has not captured yet.
 */

afterAll(cleanup)
const sha = (t: string): string => createHash('sha256').update(t).digest('hex')

/** A manifest record's entry as the store gives it (newest first in the lists below). */
function row(stamp: string, v: Record<string, JsonValue>): ManifestVersionRow {
  return { stamp, time: parseInt(stamp.slice(0, 9), 36), device: stamp.slice(stamp.lastIndexOf('.') + 1), v }
}
const s = (ms: number, dev = 'devA'): string => `${ms.toString(36).padStart(9, '0')}.0000.${dev}`
const rec = (path: string, hash: string, extra: Record<string, JsonValue> = {}): Record<string, JsonValue> => ({
  path,
  kind: 'text',
  size: hash.length,
  hash,
  x: false,
  ...extra,
})

describe("a file's versions from its manifest entries", () => {
  const rows = [
    row(s(1600), rec('b.txt', 'h3')), // taken back after the delete
    row(s(1500), rec('b.txt', 'h2', { deleted: { t: s(1500), hash: 'h2' } })),
    row(s(1400), rec('b.txt', 'h2', { pathAt: `${s(1400)} devA` })), // bookkeeping only: not a version
    row(s(1300, 'devB'), rec('b.txt', 'h2')),
    row(s(1200), rec('a.txt', 'h2')),
    row(s(1100), rec('a.txt', 'h1')),
  ]

  it('lists ops newest first, names devices, and leaves out writes that changed nothing of the file', () => {
    const v = fileVersions(rows, new Map([['devA', 'laptop']]))
    expect(v.map((x) => [x.op, x.path, x.hash, x.device])).toEqual([
      ['added', 'b.txt', 'h3', 'laptop'],
      ['removed', 'b.txt', 'h2', 'laptop'],
      ['renamed', 'b.txt', 'h2', 'devB'],
      ['modified', 'a.txt', 'h2', 'laptop'],
      ['added', 'a.txt', 'h1', 'laptop'],
    ])
    expect(v[2]).toMatchObject({ from: 'a.txt', id: s(1300, 'devB') })
  })

  it('the oldest entry kept (earlier ones pruned) is a change, not an addition, when it was a field write', () => {
    const kept = [
      { ...row(s(2000), rec('b.txt', 'h9')), fields: ['size', 'hash'] },
      { ...row(s(1900), rec('b.txt', 'h8')), fields: ['path'] },
    ]
    expect(fileVersions(kept).map((v) => v.op)).toEqual(['modified', 'renamed'])
    expect(fileVersions([{ ...row(s(2000), rec('b.txt', 'h9')), fields: ['path', 'hash'], w: 1 }]).map((v) => v.op)).toEqual(['added'])
  })

  it('restore picks by id, or the version current at a time; a removal, an unknown id or a time before the file are refused', () => {
    const v = fileVersions(rows)
    expect(pickVersion(v, { version: s(1200) }, 'x').hash).toBe('h2')
    expect(pickVersion(v, { at: 1250 }, 'x').id).toBe(s(1200))
    expect(pickVersion(v, { at: 1100 }, 'x').id).toBe(s(1100))
    const code = (f: () => unknown): string | undefined => {
      try {
        f()
      } catch (err) {
        return isKitsyncError(err) ? err.code : 'other'
      }
      return undefined
    }
    expect(code(() => pickVersion(v, { at: 1550 }, 'x'))).toBe('INVALID_ARGUMENT') // the file was removed then
    expect(code(() => pickVersion(v, { version: s(1500) }, 'x'))).toBe('INVALID_ARGUMENT')
    expect(code(() => pickVersion(v, { version: 'nope' }, 'x'))).toBe('NOT_FOUND')
    expect(code(() => pickVersion(v, { at: 1000 }, 'x'))).toBe('NOT_FOUND')
    expect(code(() => pickVersion(v, {}, 'x'))).toBe('INVALID_ARGUMENT')
  })
})

describe("history entries of a real workspace's folder manifest", () => {
  const open: LocalWorkspace[] = []
  afterEach(async () => {
    for (const ws of open.splice(0)) await ws.close()
  })
  const C = '_folder.sim'
  const KEY = 'fileidaaaaaaaaaaaaaaaa'
  async function workspace(): Promise<LocalWorkspace> {
    const ws = await LocalWorkspace.open({ home: await makeHome() })
    open.push(ws)
    return ws
  }
  async function rowsOf(ws: LocalWorkspace): Promise<ManifestVersionRow[]> {
    await ws.flush()
    return (await readRecordHistory(ws.store.db, C, KEY)).versions
  }

  it('one entry per manifest write (a capture writes several fields), the same ids on the device that merged it', async () => {
    const [a, b] = [await workspace(), await workspace()]
    const exchange = async (): Promise<void> => {
      const [da, db] = [await a.openDoc(C), await b.openDoc(C)]
      Y.applyUpdate(db, Y.encodeStateAsUpdate(da, Y.encodeStateVector(db)))
    }
    await a.units.commit(C, [], [{ key: KEY, fields: rec('n.txt', 'h1') }])
    await exchange()
    await a.units.commit(C, [], [{ key: KEY, fields: { kind: 'text', size: 22, hash: 'h2', x: false } }])
    await exchange()
    await a.units.commit(C, [], [{ key: KEY, fields: { path: 'm.txt', pathAt: 'x' } }])
    await exchange()
    const mine = await rowsOf(a)
    expect(fileVersions(mine).map((v) => [v.op, v.path, v.hash])).toEqual([
      ['renamed', 'm.txt', 'h2'],
      ['modified', 'n.txt', 'h2'],
      ['added', 'n.txt', 'h1'],
    ])
    expect(mine).toHaveLength(3)
    expect((await rowsOf(b)).map((r) => r.stamp)).toEqual(mine.map((r) => r.stamp))
  })

  it("the retention prunes a folder manifest's entries like a collection's (default: the last 100)", async () => {
    const ws = await workspace()
    await ws.units.commit(C, [], [{ key: KEY, fields: rec('n.txt', 'h0') }])
    for (let i = 1; i <= 104; i++) await ws.units.commit(C, [], [{ key: KEY, fields: { size: i, hash: `h${i}` } }])
    expect(await rowsOf(ws)).toHaveLength(105)
    await ws.historyDesk.pruneNow(true)
    const kept = await rowsOf(ws)
    expect(kept).toHaveLength(100)
    // The newest stay.
    expect((kept[0]?.v as { hash: string }).hash).toBe('h104')
    expect((kept[99]?.v as { hash: string }).hash).toBe('h5')
  })
})

describe('restore on the engine', () => {
  const running: FolderEngine[] = []
  afterEach(async () => {
    await Promise.all(running.splice(0).map((e) => e.stop()))
  })
  const definition: FolderDefinition = { include: [], exclude: [], maxFileSize: DEFAULT_MAX_FILE_SIZE, createdBy: 'test', createdAt: 0 }

  /** One device over the in-memory network, with a history port that records each manifest write as the deriver would. */
  async function engineWithHistory(): Promise<{ engine: FolderEngine; root: string }> {
    const net = new FakeFolderNet(prng(7))
    const device = net.add('12D3KooWdevicehistoryA')
    const rows = new Map<string, ManifestVersionRow[]>()
    await device.watchRecords(folderCollection('sim'), (e) => {
      const stamp = device.stamp()
      const list = rows.get(e.key) ?? []
      list.unshift({ stamp, time: parseInt(stamp.slice(0, 9), 36), device: nodeTagOf(device.deviceId), ...(e.value === undefined ? { d: 1 } : { v: e.value }) })
      rows.set(e.key, list)
    })
    Object.defineProperty(device, 'history', { value: { rows: async (_c: string, k: string) => rows.get(k) ?? [], deviceNames: async () => new Map() } })
    const root = await makeTempDir('ks-fhist-')
    const engine = new FolderEngine(device, { name: 'sim', root, definition, settleMs: 5 })
    await engine.start()
    running.push(engine)
    return { engine, root }
  }

  async function versionsOf(engine: FolderEngine, n: number): Promise<Awaited<ReturnType<typeof fileHistory>>> {
    return waitUntil(
      async () => {
        await engine.idle()
        const h = await fileHistory(engine.host, 'sim', 'a.txt', engine).catch(() => undefined)
        return h !== undefined && h.versions.length === n ? h : undefined
      },
      10_000,
      `${n} versions`,
    )
  }

  it('an edit not captured yet when the restore runs is refused with FILE_CHANGED and left as it is; then the restore goes through', async () => {
    const { engine, root } = await engineWithHistory()
    const file = join(root, 'a.txt')
    await writeFile(file, 'one\n')
    await versionsOf(engine, 1)
    await writeFile(file, 'two\n')
    const h = await versionsOf(engine, 2)
    // Hold the folder's queue: the restore is queued first, then the edit lands (its capture queues behind).
    let release = (): void => undefined
    void engine.enqueue('gate', () => new Promise<void>((r) => (release = r)))
    const restoring = restoreFile(engine, 'a.txt', { version: h.versions[1]?.id as string })
    await writeFile(file, 'three, not captured\n')
    await waitUntil(
      async () => (engine.watcher.snapshot().get('a.txt')?.hash === sha('three, not captured\n') ? true : undefined),
      10_000,
      'the watcher saw it',
    )
    release()
    const err = await restoring.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isKitsyncError(err) ? err.code : err).toBe('FILE_CHANGED')
    expect(await readFile(file, 'utf8')).toBe('three, not captured\n')
    // Captured now (version 3): the restore of version 1 writes it, as a new version.
    await versionsOf(engine, 3)
    const r = await restoreFile(engine, 'a.txt', { version: h.versions[1]?.id as string })
    expect(r).toMatchObject({ revived: false, restored: { hash: sha('one\n') } })
    expect(await readFile(file, 'utf8')).toBe('one\n')
    const after = await versionsOf(engine, 4)
    expect(after.versions[0]).toMatchObject({ op: 'modified', hash: sha('one\n') })
    expect(await engine.docText(after.fileId)).toBe('one\n')
  })
})
