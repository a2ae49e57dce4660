import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { debugLog } from '../core/debug-log.js'
import { isFolderCollection } from '../core/membership.js'
import type { HomePaths } from '../store/home.js'
import type { ControlServer } from './control-server.js'
import type { FolderService } from './folder-service.js'
import type { LocalWorkspace } from './local-workspace.js'

/**
 * The shared folders of a peer, loaded only when this device has any (Peer.start). The folder
 * code (folder-service.ts, folder-engine.ts, folder/*, the `diff` package: some 40 modules) cost
 * an idle peer about 8 MB of RSS (`kitsync peer start`, no data: 89-93 MB with it, 78-86 MB
 * without, 3 runs each). A peer that places no folder starts without it, and loads it at its
 * first folder call (`kitsync folder add|list|status|remove|history|restore|set`); one with a placed folder starts
 * it at once, as before.
 */

const log = debugLog('folder:lazy')

type FolderCalls = Pick<FolderService, 'add' | 'list' | 'status' | 'remove' | 'history' | 'restore' | 'setHistory' | 'setSelection'>

/** How the folders were wired (tests). */
export interface FolderWiring {
  /** True once the folder service runs (at start, or at the first folder call). */
  readonly started: boolean
  /** True once the folder code is loaded ahead of a folder call (see wireFolders). */
  readonly preloaded: boolean
}

/** Whether the placements file (HOME/folders.json) places a folder here; unreadable or damaged: yes (the service then reports it). */
export async function placesFolders(file: string): Promise<boolean> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
  try {
    const folders = (JSON.parse(text) as { folders?: unknown }).folders
    return typeof folders !== 'object' || folders === null || Object.keys(folders).length > 0
  } catch {
    return true
  }
}

/**
 * Start the folders placed on this device now, or give the control server a stand-in that starts
 * them at the first folder call. A workspace that shares a folder not placed here (at start, or
 * once a peer's update of a folder's manifest arrives) loads the folder code then, without
 * starting the service: `folder add` on this device is then not delayed by the load (170-240 ms
 * of the initial sync of 1,000 files), for the ~8 MB the code costs a peer that never places it.
 */
export async function wireFolders(workspace: LocalWorkspace, paths: HomePaths, control: ControlServer | undefined): Promise<FolderWiring> {
  let service: Promise<FolderService> | undefined
  let code: Promise<typeof import('./folder-wiring.js')> | undefined
  const wiring = { started: false, preloaded: false }
  const load = (): Promise<typeof import('./folder-wiring.js')> => (code ??= import('./folder-wiring.js'))
  const start = (): Promise<FolderService> =>
    (service ??= load().then(async ({ startFolders }) => {
      const started = await startFolders(workspace, paths, control)
      wiring.started = true
      return started
    }))
  if (await placesFolders(join(paths.home, 'folders.json'))) {
    await start()
    return wiring
  }
  if (control !== undefined) {
    const calls: FolderCalls = {
      add: async (options) => (await start()).add(options),
      list: async () => (await start()).list(),
      status: async (name) => (await start()).status(name),
      remove: async (name) => (await start()).remove(name),
      history: async (name, path) => (await start()).history(name, path),
      restore: async (name, path, target) => (await start()).restore(name, path, target),
      setHistory: async (name, setting) => (await start()).setHistory(name, setting),
      setSelection: async (name, change) => (await start()).setSelection(name, change),
    }
    control.setFolders(calls)
    let off: (() => void) | undefined
    const preload = (): void => {
      off?.()
      off = undefined
      if (code !== undefined) return
      load().then(
        () => void (wiring.preloaded = !wiring.started),
        (err: unknown) => log('the folder code did not load ahead', err),
      )
    }
    if (workspace.collectionNames().some(isFolderCollection)) preload()
    else off = workspace.units.on('unit:update', (u) => isFolderCollection(u.collection) && preload())
    workspace.onClose(async () => off?.())
  }
  return wiring
}
