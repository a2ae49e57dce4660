import { readdir, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { KitsyncError } from '../core/errors.js'
import { isJsonObject, parseJson, type JsonValue } from '../core/json.js'
import { collectionFolderName, COLLECTION_FILE, decodeStem, isLongStem, RECORD_SUFFIX } from '../core/record-file-names.js'
import type { ImportCollection, ImportSource } from '../core/transfer-types.js'
import { COLLECTION_FORMAT } from './git-export.js'

/**
 * Read what `kitsync import FILE|DIR` loads: a JSON export (`kitsync export`, format
 * `kitsync-export`) or the folder of a git export (`kitsync export --git`: every subfolder
 * with a `_collection.json`; other folders and files, `.git` among them, are not looked at).
 * Anything that is not one of them fails with INVALID_ARGUMENT (INVALID_JSON for a file that
 * is not JSON), naming the file.
 */
export async function readImportSource(path: string): Promise<ImportSource> {
  const target = resolve(path)
  const st = await stat(target).catch((err: NodeJS.ErrnoException) => {
    throw new KitsyncError(err.code === 'ENOENT' ? 'NOT_FOUND' : 'INVALID_ARGUMENT', `cannot read ${target}: ${err.code ?? err.message}`)
  })
  return st.isDirectory() ? readGitExport(target) : readJsonExport(target)
}

async function readJsonExport(file: string): Promise<ImportSource> {
  const data = parseJson(await readFile(file, 'utf8'), file)
  if (!isJsonObject(data) || data.format !== 'kitsync-export' || !isJsonObject(data.collections)) {
    throw new KitsyncError('INVALID_ARGUMENT', `${file} is not a kitsync export (format "kitsync-export", from kitsync export)`)
  }
  if (data.formatVersion !== 1)
    throw new KitsyncError('INVALID_ARGUMENT', `${file} is export format version ${String(data.formatVersion)}; this kitsync reads version 1`)
  const collections: Record<string, ImportCollection> = {}
  for (const [name, records] of Object.entries(data.collections)) {
    if (!isJsonObject(records)) throw new KitsyncError('INVALID_ARGUMENT', `${file}: collection ${JSON.stringify(name)} is not an object of records`)
    collections[name] = { records }
  }
  return { collections }
}

async function readGitExport(dir: string): Promise<ImportSource> {
  const collections: Record<string, ImportCollection> = {}
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue
    const folder = join(dir, entry.name)
    const metaText = await readFile(join(folder, COLLECTION_FILE), 'utf8').catch(() => undefined)
    if (metaText === undefined) continue
    const meta = parseJson(metaText, join(folder, COLLECTION_FILE))
    if (!isJsonObject(meta) || meta.format !== COLLECTION_FORMAT || typeof meta.collection !== 'string') {
      throw new KitsyncError('INVALID_ARGUMENT', `${join(folder, COLLECTION_FILE)} is not a kitsync collection file`)
    }
    if (collectionFolderName(meta.collection) !== entry.name) {
      throw new KitsyncError(
        'INVALID_ARGUMENT',
        `${folder} holds collection ${JSON.stringify(meta.collection)}, whose folder is ${collectionFolderName(meta.collection)}`,
      )
    }
    const longKeys = isJsonObject(meta.longKeys) ? meta.longKeys : {}
    const records: Record<string, JsonValue> = {}
    const files = (await readdir(folder)).filter((f) => f.endsWith(RECORD_SUFFIX) && f !== COLLECTION_FILE).sort()
    const texts = await readAll(files.map((f) => join(folder, f)))
    for (const [i, file] of files.entries()) {
      const stem = file.slice(0, -RECORD_SUFFIX.length)
      const long = longKeys[file]
      const key = isLongStem(stem) ? (typeof long === 'string' ? long : undefined) : decodeStem(stem)
      if (key === undefined) {
        throw new KitsyncError(
          'INVALID_ARGUMENT',
          `${join(folder, file)}: not a record file name (a key encoded as docs/RECORDS.md "Git export" says${isLongStem(stem) ? `, or a long name listed in ${COLLECTION_FILE}` : ''})`,
        )
      }
      const value = parseJson(texts[i] as string, join(folder, file))
      if (key === '__proto__') Object.defineProperty(records, key, { value, enumerable: true, writable: true, configurable: true })
      else records[key] = value
    }
    const settings: NonNullable<ImportCollection['settings']> = {}
    if (typeof meta.kind === 'string') settings.kind = meta.kind
    if (typeof meta.policy === 'string') settings.policy = meta.policy
    if (isJsonObject(meta.limits)) {
      const limits: { maxRecords?: number; maxSetSize?: number } = {}
      if (typeof meta.limits.maxRecords === 'number') limits.maxRecords = meta.limits.maxRecords
      if (typeof meta.limits.maxSetSize === 'number') limits.maxSetSize = meta.limits.maxSetSize
      settings.limits = limits
    }
    collections[meta.collection] = { settings, records }
  }
  if (Object.keys(collections).length === 0) {
    throw new KitsyncError('INVALID_ARGUMENT', `${dir} holds no collection of a git export (folders with ${COLLECTION_FILE})`)
  }
  return { collections }
}

/** Read files, 32 at a time. */
async function readAll(paths: string[]): Promise<string[]> {
  const out: string[] = new Array(paths.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++
      out[i] = await readFile(paths[i] as string, 'utf8')
    }
  }
  await Promise.all(Array.from({ length: Math.min(32, paths.length) }, worker))
  return out
}
