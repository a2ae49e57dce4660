import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import { makeHome } from '../helpers/cli.js'
import { closeLocal as close, closeWorkspaces, openLocal as workspace } from '../helpers/local-workspaces.js'

afterEach(closeWorkspaces)

/**
 * Blob collection (store/blob-gc.ts) on a real LevelDB in a temporary home, through the
 * workspace's own paths: manifest records committed with units (rows and history derived in
 * their batch), blobs stored, then the history desk's full pass. A blob no folder names goes;
 * one a live record, a kept version or a delete names stays, and so does one this process stored
 * a moment ago (its record may be on its way).
 */

const C = '_folder.notes'
const U1 = 'AAAAAAAAAAAAAAAAAAAAAA'
const U2 = 'BBBBBBBBBBBBBBBBBBBBBB'
const enc = new TextEncoder()
const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

async function put(ws: LocalWorkspace, text: string): Promise<string> {
  await ws.units.putBlob(sha(text), enc.encode(text))
  return sha(text)
}

async function stored(ws: LocalWorkspace): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const key of ws.store.db.keys({ gte: 'o!', lt: 'o"' })) out.add(key.slice(2))
  return out
}

/** A workspace (reopened: nothing in it stored by this process) with a folder manifest naming some blobs, and one blob nobody names. */
async function seeded(): Promise<{ home: string; ws: LocalWorkspace; named: string[]; orphan: string }> {
  const home = await makeHome()
  const first = await workspace(home)
  const [v1, v2, gone, orphan] = [await put(first, 'v1'), await put(first, 'v2'), await put(first, 'gone'), await put(first, 'orphan')]
  const doc = await first.units.open(C, U1, () => new Y.Doc())
  let update: Uint8Array | undefined
  doc.on('update', (u: Uint8Array) => void (update = u))
  doc.getText('text').insert(0, 'x')
  // a.bin's first version names v1 (then only its history does), its second v2; b.bin was deleted at content `gone`.
  await first.units.commit(C, [{ unit: U1, update: update as Uint8Array }], [{ key: U1, fields: { path: 'a.bin', kind: 'binary', size: 2, hash: v1 } }])
  await first.units.commit(C, [], [{ key: U1, fields: { hash: v2 } }])
  await first.units.commit(C, [], [{ key: U2, fields: { path: 'b.bin', kind: 'binary', size: 4, hash: '', deleted: { t: 'x', hash: gone } } }])
  await close(first)
  return { home, ws: await workspace(home), named: [v1, v2, gone], orphan }
}

describe('blob collection on LevelDB', () => {
  it('a full pass deletes the blob no folder names and keeps those a record, a kept version or a delete names', async () => {
    const { ws, named, orphan } = await seeded()
    const fresh = await put(ws, 'stored just now, its record not written yet')
    expect(await stored(ws)).toEqual(new Set([...named, orphan, fresh]))
    await ws.historyDesk.pruneNow(true)
    expect(await stored(ws)).toEqual(new Set([...named, fresh]))
    for (const h of named) expect(await ws.units.getBlob(h)).toBeDefined()
  })

  it('a blob stored again while a delete of it runs is kept, whichever starts first', async () => {
    const { ws, orphan } = await seeded()
    const units = ws.store.units
    // The put first, in flight when the delete starts: the delete waits for it and leaves the blob.
    const putting = ws.units.putBlob(orphan, enc.encode('orphan'))
    const dropped = await units.dropBlobs([orphan])
    await putting
    expect(dropped).toEqual([])
    expect(await ws.units.getBlob(orphan)).toBeDefined()
    // The delete first (in another process's run: not recent), the put while it runs: the put lands after it.
    const other = await seeded()
    const dropping = other.ws.store.units.dropBlobs([other.orphan])
    const put2 = other.ws.units.putBlob(other.orphan, enc.encode('orphan'))
    expect(await dropping).toEqual([other.orphan])
    await put2
    expect(await other.ws.units.getBlob(other.orphan)).toBeDefined()
  })

  it('nothing is deleted while a manifest has no checkpoint (its rows may not name every blob)', async () => {
    const { ws, named, orphan } = await seeded()
    await ws.store.batch([{ type: 'del', key: `n!${C}` }])
    await ws.historyDesk.pruneNow(true)
    expect(await stored(ws)).toEqual(new Set([...named, orphan]))
  })
})
