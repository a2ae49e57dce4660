import { resolve } from 'node:path'
import type { ImportOptions, ImportReport, ImportSource, GitExportOptions, GitExportReport } from '../core/transfer-types.js'
import type { Workspace } from '../core/workspace-types.js'
import { DEFAULT_MAX_RECORD_BYTES } from '../core/record-collection.js'
import type { CollectionRegistry } from './collection-registry.js'
import type { ImportHost, ImportTuning } from './workspace-import.js'

export interface WorkspaceTransferOptions {
  workspace: Workspace & { appCollectionNames(): string[] }
  registry: Pick<CollectionRegistry, 'existing' | 'has' | 'load'>
  /** Largest record (default: DEFAULT_MAX_RECORD_BYTES). */
  maxRecordBytes?: number | undefined
  /** Throws when the workspace is closed. */
  assertOpen(): void
}

/** Git export and import of a workspace whose store this process owns (LocalWorkspace's exportGit and importRecords). */
export class WorkspaceTransfer {
  constructor(private readonly options: WorkspaceTransferOptions) {}

  async exportGit(dir: string, options: GitExportOptions = {}): Promise<GitExportReport> {
    this.options.assertOpen()
    const { workspace, registry } = this.options
    // Loaded on use: it starts child processes, which nothing else of the workspace does.
    const { exportGit } = await import('./git-export.js')
    const host = {
      info: () => workspace.info(),
      devices: () => workspace.devices(),
      appCollectionNames: () => workspace.appCollectionNames(),
      collection: (name: string) => workspace.collection(name),
      stampedRecords: async (name: string) => {
        const c = (await registry.existing(name)).collection
        return { records: c.entries(), stampOf: (key: string) => c.lastWrite(key) }
      },
    }
    return exportGit(host, resolve(dir), options)
  }

  /** `tuning` (the event loop's turn and the slice budget) for tests; the maxRecordBytes is the workspace's. */
  async importRecords(source: ImportSource, options: ImportOptions = {}, tuning: Omit<ImportTuning, 'maxRecordBytes'> = {}): Promise<ImportReport> {
    this.options.assertOpen()
    // Loaded on use, as git-export.js: a workspace's open does not pay for the import's code.
    const { importRecords } = await import('./workspace-import.js')
    const { workspace, registry } = this.options
    const host: ImportHost = {
      collection: (name) => workspace.collection(name),
      get: (collection, key) => workspace.get(collection, key),
      getAll: (collection) => workspace.getAll(collection),
      configure: (name, change) => workspace.configure(name, change),
      set: (collection, key, value) => workspace.set(collection, key, value),
      delete: (collection, key) => workspace.delete(collection, key),
      recordCount: async (name) => (registry.has(name) ? (await registry.load(name)).collection.size : undefined),
    }
    return importRecords(host, source, options, { ...tuning, maxRecordBytes: this.options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES })
  }
}
