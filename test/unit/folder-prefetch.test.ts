import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { StampedEntry } from '../../src/core/folder-manifest.js'
import { DEFAULT_MAX_FILE_SIZE } from '../../src/core/folder-selection.js'
import { newTextFileDoc, TEXT_NAME } from '../../src/core/folder-text-doc.js'
import type { Units } from '../../src/core/unit-types.js'
import { applyBatched, WRITE_BATCH } from '../../src/daemon/folder-batch.js'
import { FolderEngine } from '../../src/daemon/folder-engine.js'
import type { FolderDefinition } from '../../src/daemon/folder-host.js'
import { byFileId, docPrefetcher, PREFETCH_MIN } from '../../src/daemon/folder-prefetch.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { UnitDocLru } from '../../src/daemon/unit-doc-lru.js'
import { cleanup, makeHome, makeTempDir } from '../helpers/cli.js'
import { FakeFolderNet, type FakeDevice } from '../helpers/fake-folder-net.js'
import { prng } from '../helpers/memory-mesh.js'

/**
 * The documents of a batch of files brought to disk together are opened together: one read of
 * the store for the batch (UnitStore.readMany, WorkspaceUnits.openMany) instead of one per file,
 * when the batch's units are a span of the manifest's (folder-prefetch.ts).
 */

const C = '_folder.docs'

afterEach(cleanup)

/** A unit's update that sets its text (as a capture does). */
function textUpdate(text: string, doc = newTextFileDoc()): { doc: Y.Doc; update: Uint8Array } {
  const sv = Y.encodeStateVector(doc)
  doc.getText(TEXT_NAME).insert(doc.getText(TEXT_NAME).length, text)
  return { doc, update: Y.encodeStateAsUpdate(doc, sv) }
}

const unitId = (i: number): string => `u${String(i).padStart(3, '0')}`

describe('WorkspaceUnits.openMany and UnitStore.readMany (real LevelDB)', () => {
  it('open many units with one read: each the text stored, the same document open() gives, units asked for only', async () => {
    const ws = await LocalWorkspace.open({ home: await makeHome() })
    try {
      // 30 units; every third has a second update in its log; u015 is never asked for.
      for (let i = 0; i < 30; i++) {
        const first = textUpdate(`file ${i}\n`)
        await ws.units.commit(C, [{ unit: unitId(i), update: first.update }], [{ key: unitId(i), fields: { path: `f${i}.txt` } }])
        if (i % 3 === 0) await ws.units.commit(C, [{ unit: unitId(i), update: textUpdate(`more ${i}\n`, first.doc).update }])
      }
      const wanted = [...Array.from({ length: 30 }, (_, i) => unitId(i)).filter((u) => u !== 'u015'), 'u999']
      const stored = await ws.store.units.readMany(C, wanted)
      expect([...stored.keys()]).toEqual([...wanted].sort())
      for (const u of wanted) expect(stored.get(u), u).toEqual(await ws.store.units.read(C, u))
      expect(stored.has('u015')).toBe(false)

      const opened = ws.units.openMany(C, wanted.reverse(), newTextFileDoc)
      expect([...opened.keys()].sort()).toEqual([...wanted].sort())
      for (let i = 0; i < 30; i++) {
        if (i === 15) continue
        const doc = await opened.get(unitId(i))
        expect(doc?.getText(TEXT_NAME).toString(), unitId(i)).toBe(i % 3 === 0 ? `file ${i}\nmore ${i}\n` : `file ${i}\n`)
        // Open until closed: open() gives the same document, with what a later commit adds.
        expect(await ws.units.open(C, unitId(i), newTextFileDoc)).toBe(doc)
      }
      expect((await opened.get('u999'))?.getText(TEXT_NAME).toString()).toBe('')
      // A unit already open is given as it is, not read again.
      const again = ws.units.openMany(C, [unitId(1), unitId(2)], newTextFileDoc)
      expect(await again.get(unitId(1))).toBe(await opened.get(unitId(1)))
    } finally {
      await ws.close()
    }
  })

  it("a peer's update stored while the batch is being read is in the document", async () => {
    const ws = await LocalWorkspace.open({ home: await makeHome() })
    try {
      const docs: Y.Doc[] = []
      for (let i = 0; i < 10; i++) {
        const t = textUpdate(`file ${i}\n`)
        docs.push(t.doc)
        await ws.units.commit(C, [{ unit: unitId(i), update: t.update }], [{ key: unitId(i), fields: { path: `f${i}.txt` } }])
      }
      const opened = ws.units.openMany(
        C,
        Array.from({ length: 10 }, (_, i) => unitId(i)),
        newTextFileDoc,
      )
      // Before the read resolves: a peer's edit of u004 arrives and is stored.
      const edit = textUpdate('from a peer\n', docs[4])
      expect(await ws.units.applyRemote(C, unitId(4), edit.update, 'peer')).toBe(true)
      expect((await opened.get(unitId(4)))?.getText(TEXT_NAME).toString()).toBe('file 4\nfrom a peer\n')
    } finally {
      await ws.close()
    }
  })
})

/** A Units that records openMany and close calls (the prefetch's decisions). */
function recordingUnits(withOpenMany = true): Units & { many: string[][]; closed: string[] } {
  const many: string[][] = []
  const closed: string[] = []
  const units = {
    many,
    closed,
    open: () => Promise.resolve(newTextFileDoc()),
    close: (_c: string, unit: string) => void closed.push(unit),
    ...(withOpenMany
      ? {
          openMany: (_c: string, ids: readonly string[]) => {
            many.push([...ids])
            return new Map(ids.map((id) => [id, Promise.resolve(newTextFileDoc())]))
          },
        }
      : {}),
  }
  return units as unknown as Units & { many: string[][]; closed: string[] }
}

const entry = (fileId: string, kind: StampedEntry['kind'] = 'text'): StampedEntry =>
  ({ fileId, kind, path: `${fileId}.txt`, size: 1, hash: 'h' }) as unknown as StampedEntry

function target(units: Units, ids: string[], stopped = false): { docs: UnitDocLru<Y.Doc>; run: (batch: readonly StampedEntry[]) => void } {
  const docs = new UnitDocLru<Y.Doc>({ drop: () => undefined })
  const entries = new Map(ids.map((id) => [id, entry(id)]))
  const run = docPrefetcher({ collection: C, units, docs, entries, stopped: () => stopped })
  return { docs, run }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('docPrefetcher: which batches are opened together', () => {
  const all = Array.from({ length: 200 }, (_, i) => unitId(i))

  it('a batch that is a span of the manifest: one openMany of its text files, kept among the open documents', async () => {
    const units = recordingUnits()
    const { docs, run } = target(units, all)
    const batch = [...all.slice(10, 40).map((id) => entry(id)), entry('u020x', 'dir')].reverse()
    run(batch)
    expect(units.many).toEqual([all.slice(10, 40)])
    await flush()
    for (const id of all.slice(10, 40)) expect(docs.peek(id), id).toBeDefined()
    // Open already: not asked again.
    run(all.slice(10, 40).map((id) => entry(id)))
    expect(units.many).toHaveLength(1)
  })

  it('a batch spread over the manifest, or too small, is left to the files one by one', () => {
    const units = recordingUnits()
    const { run } = target(units, all)
    run(all.filter((_, i) => i % 10 === 0).map((id) => entry(id))) // 20 units over a span of 191
    run(all.slice(0, PREFETCH_MIN - 1).map((id) => entry(id)))
    expect(units.many).toEqual([])
  })

  it('without openMany nothing is asked; a document read after the engine stopped is closed again', async () => {
    const plain = recordingUnits(false)
    target(plain, all).run(all.slice(0, 20).map((id) => entry(id)))
    expect(plain.many).toEqual([])
    const units = recordingUnits()
    const { docs, run } = target(units, all, true)
    run(all.slice(0, 20).map((id) => entry(id)))
    await flush()
    expect(units.closed.sort()).toEqual(all.slice(0, 20))
    expect(docs.size).toBe(0)
  })

  it('applyBatched over entries in fileId order hands each batch to the prefetch before its writes', async () => {
    const units = recordingUnits()
    const { run } = target(units, all)
    const seen: string[][] = []
    const order: string[] = []
    const ctx = { root: '/nowhere', device: 'd', stamp: () => '0', states: undefined as never }
    const shuffled = [...all].sort((a, b) => (a.split('').reverse().join('') < b.split('').reverse().join('') ? -1 : 1))
    await applyBatched(
      ctx,
      byFileId(shuffled.map((id) => entry(id))),
      async (id) => void order.push(id),
      (batch) => {
        seen.push(batch.map((e) => e.fileId))
        expect(order).toHaveLength(seen.length === 1 ? 0 : (seen.length - 1) * WRITE_BATCH)
        run(batch)
      },
    )
    expect(seen.flat()).toEqual(all)
    expect(units.many).toEqual(seen)
  })
})

describe('the folder engine opens a batch of files to bring to disk together', () => {
  const running: FolderEngine[] = []
  afterEach(async () => {
    await Promise.all(running.splice(0).map((e) => e.stop()))
  })
  const definition: FolderDefinition = { include: [], exclude: [], maxFileSize: DEFAULT_MAX_FILE_SIZE, createdBy: 'test', createdAt: 0 }
  const start = async (device: FakeDevice, root: string): Promise<FolderEngine> => {
    const engine = new FolderEngine(device, { name: 'sim', root, definition, settleMs: 5 })
    await engine.start()
    running.push(engine)
    return engine
  }

  it('a device that places a folder whose files it holds already: every file written, their documents opened in batches', async () => {
    const net = new FakeFolderNet(prng(5))
    const a = net.add('devA')
    const b = net.add('devB')
    const rootA = await makeTempDir('ks-pre-a-')
    const rootB = await makeTempDir('ks-pre-b-')
    const want: Record<string, string> = {}
    for (let i = 0; i < 100; i++) {
      const path = `group${i % 4}/file${i}.json`
      want[path] = `{ "file": ${i} }\n`
      await mkdir(join(rootA, `group${i % 4}`), { recursive: true })
      await writeFile(join(rootA, path), want[path])
    }
    const engineA = await start(a, rootA)
    await engineA.idle()
    net.deliver() // B holds the manifest and the units before its engine starts
    const engineB = await start(b, rootB)
    await engineB.idle()
    for (const [path, text] of Object.entries(want)) expect(await readFile(join(rootB, path), 'utf8'), path).toBe(text)
    const asked = b.fakeUnits.openManyCalls
    expect(asked.length).toBeGreaterThan(0)
    expect(new Set(asked.flat()).size).toBe(100)
    for (const ids of asked) expect(ids).toEqual([...ids].sort())
  })
})
