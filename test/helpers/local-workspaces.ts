import type * as Y from 'yjs'
import { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import { cleanup, makeHome } from './cli.js'

/**
 * Workspaces opened in the test's own process on a real LevelDB in a temporary home (the
 * contract tests of the store's units, blobs and history). A file closes them after each test:
 * `afterEach(closeWorkspaces)`.
 */

const open: LocalWorkspace[] = []

/** Open the workspace of `home` (a new temporary home when none is given). */
export async function openLocal(home?: string): Promise<LocalWorkspace> {
  const ws = await LocalWorkspace.open({ home: home ?? (await makeHome()) })
  open.push(ws)
  return ws
}

/** Close one before the test ends (to open its home again). */
export async function closeLocal(ws: LocalWorkspace): Promise<void> {
  open.splice(open.indexOf(ws), 1)
  await ws.close()
}

/** Close every workspace still open and remove the temporary homes. */
export async function closeWorkspaces(): Promise<void> {
  for (const ws of open.splice(0)) await ws.close()
  await cleanup()
}

/** Apply an edit to a unit's document and return its update (as the folder layer does). */
export function unitEdit(doc: Y.Doc, edit: (text: Y.Text) => void): Uint8Array {
  let update: Uint8Array | undefined
  const take = (u: Uint8Array): void => void (update = u)
  doc.on('update', take)
  doc.transact(() => edit(doc.getText('text')))
  doc.off('update', take)
  return update as Uint8Array
}
