/**
 * Git export and import for library callers: `readImportSource(path)` reads a JSON export or a
 * git export folder into what `workspace.importRecords` takes (the workspace does the rest, in
 * this process or in the running peer).
 */
export { readImportSource } from '../daemon/import-source.js'
