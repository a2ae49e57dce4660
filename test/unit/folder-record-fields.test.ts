import { afterAll, afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import { cleanup, makeHome } from '../helpers/cli.js'

/**
 * A folder's manifest records are written through units.commit, field by field: a rename on one
 * device and an edit on another, made concurrently, both survive the merge (docs/design/folders.md
 * 2.1), as the per-field rule of the record layer promises. A whole-record write lost the rename.
 */

const C = '_folder.sim'
const open: LocalWorkspace[] = []
afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})
afterAll(cleanup)

async function workspace(): Promise<LocalWorkspace> {
  const ws = await LocalWorkspace.open({ home: await makeHome() })
  open.push(ws)
  return ws
}

/** Both collections' documents given each other's state (what a sync exchange does). */
async function exchange(a: LocalWorkspace, b: LocalWorkspace): Promise<void> {
  const [da, db] = [await a.openDoc(C), await b.openDoc(C)]
  Y.applyUpdate(db, Y.encodeStateAsUpdate(da, Y.encodeStateVector(db)))
  Y.applyUpdate(da, Y.encodeStateAsUpdate(db, Y.encodeStateVector(da)))
}

describe('manifest records written by units.commit', () => {
  it('a concurrent rename and edit of one record both survive', async () => {
    const [a, b] = [await workspace(), await workspace()]
    await a.units.commit(C, [], [{ key: 'fileidaaaaaaaaaaaaaaaa', fields: { path: 'old.md', kind: 'text', size: 1, hash: 'h0', x: false } }])
    await exchange(a, b)
    await a.units.commit(C, [], [{ key: 'fileidaaaaaaaaaaaaaaaa', fields: { path: 'new.md' } }])
    await new Promise((r) => setTimeout(r, 5)) // B's edit is the later write
    await b.units.commit(C, [], [{ key: 'fileidaaaaaaaaaaaaaaaa', fields: { size: 2, hash: 'h1' } }])
    await exchange(a, b)
    for (const ws of [a, b]) {
      expect((await ws.units.recordsOf(C)).get('fileidaaaaaaaaaaaaaaaa')).toEqual({ path: 'new.md', kind: 'text', size: 2, hash: 'h1', x: false })
    }
  })
})
