import { deviceIdOf } from '../net/identity.js'
import { initWorkspace, type HomePaths, type WorkspaceConfig } from '../store/home.js'
import { WorkspaceKeys } from '../store/key-file.js'

/**
 * The reads of a home folder's open that need none of the store's code, started by
 * openWorkspace before that code loads: their file I/O then overlaps the module loading
 * instead of following it. A module of its own, small, so that it loads first. Each promise
 * is handled (homeParts awaits it).
 */
export interface EarlyHome {
  /** workspace.json (created when missing, as initWorkspace does). */
  init: Promise<{ config: WorkspaceConfig; created: boolean }>
  /** The device id (identity.key and its id cache). */
  deviceId: Promise<string>
  /** keys.json. */
  keys: Promise<WorkspaceKeys>
}

/** Start the reads of EarlyHome; `name` is the name of a workspace made by this open. */
export function readHomeEarly(paths: HomePaths, name?: string): EarlyHome {
  const early: EarlyHome = { init: initWorkspace(paths, name), deviceId: deviceIdOf(paths.identity), keys: WorkspaceKeys.load(paths.keys) }
  for (const p of Object.values(early) as Promise<unknown>[]) p.catch(() => undefined)
  return early
}
