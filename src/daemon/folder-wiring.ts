import { join } from 'node:path'
import { debugLog } from '../core/debug-log.js'
import { nodeTagOf } from '../core/hlc.js'
import { readRecordHistory } from '../store/history-rows.js'
import type { HomePaths } from '../store/home.js'
import { LOCAL_ORIGIN } from './collection-registry.js'
import type { ControlServer } from './control-server.js'
import type { FolderHost } from './folder-host.js'
import { FolderService } from './folder-service.js'
import type { LocalWorkspace } from './local-workspace.js'

const log = debugLog('folder:wiring')

/**
 * The folder engine's host over the peer's workspace: its units, its clock, and the records of
 * the internal `_folder.NAME` collections, read from the loaded collection (the workspace's
 * record API refuses `_` names, and emits no change events for them).
 */
export async function workspaceFolderHost(workspace: LocalWorkspace): Promise<FolderHost> {
  const { deviceId } = await workspace.info()
  const units = workspace.units
  return {
    deviceId,
    units,
    stamp: () => workspace.clock.now(),
    observe: (stamp) => void workspace.clock.observe(stamp),
    collectionNames: () => workspace.collectionNames(),
    records: async (name) => (await units.recordsOf(name)).entries(),
    watchRecords: async (name, listener) =>
      (await units.recordsOf(name)).onChange((changes) => {
        for (const c of changes) listener({ key: c.key, value: c.value, source: c.origin === LOCAL_ORIGIN ? 'local' : 'remote' })
      }),
    emit: (event, payload) => workspace.emitEvent(event, payload as never),
    history: {
      rows: async (collection, key) => {
        // The rows go to LevelDB with the updates, a little behind the write-ahead file.
        await workspace.flush()
        return (await readRecordHistory(workspace.store.db, collection, key)).versions
      },
      deviceNames: async () => new Map((await workspace.devices()).map((d) => [nodeTagOf(d.peerId), d.name])),
      setRetention: async (collection, setting) => {
        // The book writes `_collections` without the app-name check (the manifest's own rules stay those of an internal collection).
        await workspace.settings.configure(collection, { history: setting })
        return workspace.historyDesk.retentionOf(collection)
      },
    },
  }
}

/** Start the shared folders placed on this device; they stop with the workspace. Called once by Peer.start. */
export async function startFolders(workspace: LocalWorkspace, paths: HomePaths, control: ControlServer | undefined): Promise<FolderService> {
  const service = new FolderService(await workspaceFolderHost(workspace), {
    file: join(paths.home, 'folders.json'),
    home: paths.home,
    afterAdd: async () => void (await workspace.syncNow({ timeoutMs: 5_000 })),
  })
  workspace.onClose(() => service.stop())
  await service.start()
  // What the start-up reconcile committed may miss the sessions' catch-up (a unit update queued
  // before a session is ready is left to that catch-up, which may have read the units before):
  // one more round covers it.
  void workspace.syncNow({ timeoutMs: 5_000 }).catch((err: unknown) => log('the sync round after starting the folders failed', err))
  control?.setFolders(service)
  return service
}
