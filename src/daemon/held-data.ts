import { KitsyncError } from '../core/errors.js'
import type { LocalWorkspace } from './local-workspace.js'

/**
 * What a home's workspace holds that a join would carry into another workspace: records of its
 * collections, and devices other than `self` in its membership. A home made by a plain command
 * (`status`, `init`, `list`) holds neither and may join.
 */
export async function heldData(workspace: LocalWorkspace, self: string): Promise<{ records: number; devices: number }> {
  const devices = Object.keys(await workspace.members()).filter((id) => id !== self).length
  // A collection that cannot be read counts as holding data: it cannot be shown to be empty.
  const records = (await workspace.list()).reduce((n, c) => n + (c.error === undefined ? c.records : 1), 0)
  return { records, devices }
}

/** The refusal of a join into a home that holds another workspace (see heldData), with the ways on. */
export function workspaceExists(home: string, info: { name: string; workspaceId: string }, held: { records: number; devices: number }): KitsyncError {
  return new KitsyncError(
    'WORKSPACE_EXISTS',
    `${home} already holds workspace ${info.name} (${info.workspaceId}) with ${held.records} record(s) and ${held.devices} other device(s); joining would merge them into the new workspace and send them to its members. Join from a fresh home folder (--home DIR), or use join --replace to keep a backup export of it in the home folder and join in its place`,
  )
}
