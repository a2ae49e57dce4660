import type { JsonValue } from './json.js'

/** What `importRecords` loads: records by collection, with the settings an export carried. */
export interface ImportSource {
  collections: Record<string, ImportCollection>
}

export interface ImportCollection {
  /** Settings of a git export's `_collection.json`; applied only to a collection that holds no records yet. */
  settings?: { kind?: string; policy?: string; limits?: { maxRecords?: number; maxSetSize?: number } }
  records: Record<string, JsonValue>
}

export interface ImportOptions {
  /** Work out and report what the import would change; write nothing. */
  dryRun?: boolean
  /**
   * Also delete the records of the imported collections that the source does not hold. Off by
   * default: an import adds and changes records, and never deletes one unless asked.
   */
  prune?: boolean
  signal?: AbortSignal
}

export interface ImportCollectionReport {
  collection: string
  /** The kind the records were checked against. */
  kind: string
  added: number
  changed: number
  unchanged: number
  /** Deleted (with `prune`), else 0. */
  deleted: number
  /** Records here that the source does not hold (left as they are without `prune`). */
  missing: number
  /** The collection did not exist and the import creates it (with the source's settings). */
  created: boolean
}

export interface ImportReport {
  dryRun: boolean
  added: number
  changed: number
  unchanged: number
  deleted: number
  missing: number
  collections: ImportCollectionReport[]
  /** Wall-clock time of the import (ms). */
  ms: number
}

/** One record (or collection) of a source that cannot be imported, with the code of the reason. */
export interface ImportProblem {
  collection: string
  key?: string
  code: string
  message: string
}

export interface GitExportOptions {
  /** Commit message subject (default: a summary of the changes). */
  message?: string
}

export interface GitExportChange {
  collection: string
  /** Absent for the collection's own file. */
  key?: string
  /** File path in the repository, relative to its top. */
  path: string
  status: 'added' | 'changed' | 'deleted'
  /** Device name (or id) that wrote the record's newest version, when known. */
  device?: string
  /** When that version was written (ISO time, from its clock stamp). */
  at?: string
}

export interface GitExportReport {
  dir: string
  /** Whether this run created the repository (`git init`). */
  initialised: boolean
  /** The commit made, or undefined when nothing changed. */
  commit?: string
  collections: number
  records: number
  changes: GitExportChange[]
}
