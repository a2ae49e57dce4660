import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Hlc } from '../../src/core/hlc.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { metaKey, parseJson } from '../../src/store/doc-layout.js'
import { unframe } from '../../src/store/framing.js'
import type { BinaryLevel } from '../../src/store/level.js'

/**
 * Which record layout a workspace's collection has (docs/RECORDS.md, "Which layout"): a new
 * collection is layout 2 and its metadata says so; a collection whose first state is layout 1
 * (created by an older kitsync, reaching this device from a peer or from its own store) stays
 * layout 1, after a reopen too.
 */

const open: LocalWorkspace[] = []
type Db = MemoryLevel<string, Uint8Array>

async function device(db: Db): Promise<LocalWorkspace> {
  const ws = await LocalWorkspace.fromDatabase(db as unknown as BinaryLevel, {
    home: '',
    deviceId: '12D3KooWaaaaaaaa',
    workspaceId: 'ws',
    name: 'n',
    version: '0',
  })
  open.push(ws)
  return ws
}

const newDb = (): Db => new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' })

async function meta(db: Db, name: string): Promise<Record<string, unknown>> {
  if (db.status !== 'open') await db.open()
  const raw = await db.get(metaKey(name))
  return parseJson(unframe(raw as Uint8Array) as Uint8Array) as Record<string, unknown>
}

afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close().catch(() => undefined)
})

describe('the layout of a workspace collection', () => {
  it('a new collection is layout 2, recorded in its metadata, and reads back after a reopen', async () => {
    const db = newDb()
    const ws = await device(db)
    await ws.set('notes', 'n1', { text: 'one' })
    const doc = await ws.openDoc('notes')
    expect(doc.getArray('slots').length).toBe(1)
    expect(doc.getMap('records').size).toBe(0)
    await ws.close()
    expect((await meta(db, 'notes')).layout).toBe(2)
    const again = await device(db)
    expect(await again.get('notes', 'n1')).toEqual({ text: 'one' })
    await again.set('notes', 'n1', { text: 'two' })
    expect((await again.openDoc('notes')).getArray('slots').length).toBe(1)
  })

  it('a collection whose first state is layout 1 stays layout 1: read, written and reopened so', async () => {
    // A layout-1 collection as an older kitsync wrote it.
    const oldDoc = new Y.Doc()
    new RecordCollection('notes', oldDoc, { layout: 1, clock: new Hlc('Oooooooo') }).set('n1', { text: 'old' }, 'w')
    const db = newDb()
    const ws = await device(db)
    expect(await ws.adopt('notes', Y.encodeStateAsUpdate(oldDoc))).toBeDefined()
    expect(await ws.get('notes', 'n1')).toEqual({ text: 'old' })
    await ws.set('notes', 'n2', { text: 'new' })
    const doc = await ws.openDoc('notes')
    expect(doc.getMap('records').size).toBe(2)
    expect(doc.getArray('slots').length).toBe(0)
    await ws.close()
    expect((await meta(db, 'notes')).layout).not.toBe(2)
    const again = await device(db)
    expect(await again.getAll('notes')).toEqual({ n1: { text: 'old' }, n2: { text: 'new' } })
    await again.set('notes', 'n3', { text: 'later' })
    expect((await again.openDoc('notes')).getArray('slots').length).toBe(0)
  })

  it('an empty collection opened before a peer fills it takes the layout of what the peer sends', async () => {
    const oldDoc = new Y.Doc()
    new RecordCollection('notes', oldDoc, { layout: 1, clock: new Hlc('Oooooooo') }).set('n1', { text: 'old' }, 'w')
    const ws = await device(newDb())
    // As the blind store's catch-up or a sync session does: open the document, then apply.
    const doc = await ws.openDoc('notes')
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(oldDoc), 'remote')
    expect(await ws.get('notes', 'n1')).toEqual({ text: 'old' })
    await ws.set('notes', 'n2', { text: 'here' })
    expect(doc.getMap('records').size).toBe(2)
  })
})
