import type { BlindUnitHost } from '../blind/client-types.js'
import { isFolderCollection } from '../core/membership.js'
import { LevelBlindMarks } from '../store/blind-marks.js'
import { entryOf } from './folder-host.js'
import type { LocalWorkspace } from './local-workspace.js'

/**
 * The shared folders' content as the blind client takes it (blind/blind-units.ts): the units and
 * blobs of every `_folder.NAME` this device syncs. A local-only folder, or one this device does
 * not select, is neither uploaded nor taken from the store (units, blobs, and its manifest, which
 * the collection rules keep home already).
 */
export function blindUnitHost(workspace: LocalWorkspace): BlindUnitHost {
  const marks = new LevelBlindMarks(workspace.store)
  const shares = (collection: string): boolean => isFolderCollection(collection) && workspace.sync.selection.syncs(collection, true)
  return {
    shares,
    collections: () => workspace.collectionNames().filter(shares),
    digests: (collection) => workspace.units.digests(collection),
    state: (collection, unit) => workspace.units.stored(collection, unit),
    apply: async (collection, unit, update, from) => {
      // New here: the connected peers get it live, as a peer's update relayed (they may not reach the store).
      if (await workspace.units.applyRemote(collection, unit, update, from)) workspace.units.relay(collection, unit, update)
    },
    blobsOf: async (collection) => {
      const records = await workspace.units.recordsOf(collection)
      const hashes = new Set<string>()
      for (const [key, value] of Object.entries(records.entries())) {
        const e = entryOf(key, value)
        if (e?.kind === 'binary' && e.deleted === undefined && /^[0-9a-f]{64}$/.test(e.hash)) hashes.add(e.hash)
      }
      return [...hashes]
    },
    blob: (hash) => workspace.units.localBlob(hash),
    putBlob: (hash, bytes) => workspace.units.storeBlob(hash, bytes),
    loadMarks: (store, collection) => marks.load(store, collection),
    saveMarks: (store, collection, rows) => marks.save(store, collection, rows),
    loadBlobMarks: (store) => marks.loadBlobs(store),
    saveBlobMarks: (store, hashes) => marks.saveBlobs(store, hashes),
    clearMarks: (store) => marks.clear(store),
  }
}
