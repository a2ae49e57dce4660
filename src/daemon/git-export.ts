import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { KitsyncError } from '../core/errors.js'
import { nodeTagOf, parseHlc } from '../core/hlc.js'
import { isJsonObject, type JsonValue } from '../core/json.js'
import { collectionFolderName, COLLECTION_FILE, decodeStem, encodeKey, isLongStem, RECORD_SUFFIX } from '../core/record-file-names.js'
import type { GitExportChange, GitExportOptions, GitExportReport } from '../core/transfer-types.js'
import type { CollectionSettingsView, DeviceRecord, WorkspaceInfo } from '../core/workspace-types.js'
import { GitRepo } from './git-repo.js'

/**
 * `export --git DIR`: each collection as a folder of JSON files, one per record, named by
 * core/record-file-names, with `_collection.json` (kind and settings) beside them, committed.
 * A second run rewrites only the files whose content changed and commits only if something
 * did, with the devices that wrote the changed records and when in the message. Only the
 * collections' folders are written, added and committed: the rest of a repository (and what
 * its owner has staged elsewhere) is left alone.
 */

/** What the export needs of a workspace (LocalWorkspace gives it). */
export interface GitExportHost {
  info(): Promise<WorkspaceInfo>
  devices(): Promise<DeviceRecord[]>
  appCollectionNames(): string[]
  collection(name: string): Promise<CollectionSettingsView>
  /** A collection's records and the clock stamp of any key's newest write (deleted records too). */
  stampedRecords(name: string): Promise<{ records: Record<string, JsonValue>; stampOf: (key: string) => string | undefined }>
}

export const COLLECTION_FORMAT = 'kitsync-collection'

/** The content of `_collection.json`. */
export interface CollectionFile {
  format: typeof COLLECTION_FORMAT
  formatVersion: 1
  collection: string
  kind: string
  policy: string
  limits: { maxRecords?: number; maxSetSize?: number }
  secretRules?: { name: string; pattern: string }[]
  /** Key of each record file with a long (hashed) name. */
  longKeys?: Record<string, string>
}

/** Record lines in a commit message at most; the per-device summary always counts them all. */
const MAX_MESSAGE_LINES = 200
/** Files read or written at once. */
const IO_CONCURRENCY = 32

export const recordText = (value: JsonValue): string => JSON.stringify(value, null, 2) + '\n'

interface CollectionPlan {
  name: string
  folder: string
  files: Map<string, string>
  keyOfFile: Map<string, string>
  stampOf: (key: string) => string | undefined
}

export async function exportGit(host: GitExportHost, dir: string, options: GitExportOptions = {}): Promise<GitExportReport> {
  const info = await host.info()
  const devices = await host.devices()
  const self = devices.find((d) => d.self)
  const tag = nodeTagOf(info.deviceId)
  const { repo, initialised } = await GitRepo.open(dir, { name: `kitsync (${self?.name ?? tag})`, email: `kitsync@${tag}.invalid` })

  // Read everything and check every folder before the first file is written.
  const plans: CollectionPlan[] = []
  let records = 0
  for (const name of [...host.appCollectionNames()].sort()) {
    const view = await host.collection(name)
    const { records: recs, stampOf } = await host.stampedRecords(name)
    const folder = collectionFolderName(name)
    await assertOwnFolder(repo.dir, folder)
    const files = new Map<string, string>()
    const keyOfFile = new Map<string, string>()
    const longKeys: Record<string, string> = {}
    for (const [key, value] of Object.entries(recs)) {
      const stem = encodeKey(key)
      const file = stem + RECORD_SUFFIX
      if (keyOfFile.has(file))
        throw new KitsyncError('INTERNAL', `${name}: records ${JSON.stringify(keyOfFile.get(file))} and ${JSON.stringify(key)} share the file name ${file}`)
      if (isLongStem(stem)) longKeys[file] = key
      files.set(file, recordText(value))
      keyOfFile.set(file, key)
      records++
    }
    const meta: CollectionFile = { format: COLLECTION_FORMAT, formatVersion: 1, collection: name, kind: view.kind, policy: view.policy, limits: view.limits }
    if (view.secretRules.length > 0) meta.secretRules = view.secretRules
    if (Object.keys(longKeys).length > 0) meta.longKeys = Object.fromEntries(Object.entries(longKeys).sort(([a], [b]) => (a < b ? -1 : 1)))
    files.set(COLLECTION_FILE, JSON.stringify(meta, null, 2) + '\n')
    plans.push({ name, folder, files, keyOfFile, stampOf })
  }

  // Keys of the files a run deletes, from the collection file as it was (long names).
  const oldKeys = new Map<string, string>()
  for (const plan of plans) await writeCollection(repo.dir, plan, oldKeys)

  const folders = plans.map((p) => p.folder)
  const changes: GitExportChange[] = []
  if (folders.length > 0) {
    await repo.run(['add', '--all', '--', ...folders])
    const diff = await repo.run(['diff', '--cached', '--name-status', '--no-renames', '-z', '--', ...folders])
    const parts = diff.stdout.split('\0')
    const byFolder = new Map(plans.map((p) => [p.folder, p]))
    // A device by its name where the membership knows it (a workspace used without a peer has none).
    const names = new Map(devices.map((d) => [nodeTagOf(d.peerId), `${d.name} (…${nodeTagOf(d.peerId)})`]))
    if (!names.has(tag)) names.set(tag, `this device (${info.deviceId})`)
    for (let i = 0; i + 1 < parts.length; i += 2) {
      const status = parts[i] as string
      const path = parts[i + 1] as string
      const [folder, file] = path.split('/') as [string, string | undefined]
      const plan = byFolder.get(folder)
      if (plan === undefined || file === undefined) continue
      const change: GitExportChange = { collection: plan.name, path, status: status === 'A' ? 'added' : status === 'D' ? 'deleted' : 'changed' }
      if (file !== COLLECTION_FILE) {
        const key =
          plan.keyOfFile.get(file) ?? oldKeys.get(path) ?? (file.endsWith(RECORD_SUFFIX) ? decodeStem(file.slice(0, -RECORD_SUFFIX.length)) : undefined)
        if (key !== undefined) {
          change.key = key
          const stamp = parseHlc(plan.stampOf(key))
          if (stamp !== undefined) {
            change.device = names.get(stamp.node) ?? `device …${stamp.node}`
            change.at = new Date(stamp.ms).toISOString()
          }
        }
      }
      changes.push(change)
    }
  }
  const report: GitExportReport = { dir: repo.dir, initialised, collections: plans.length, records, changes }
  if (changes.length === 0) return report
  await repo.run(['commit', '--no-verify', '--quiet', '-F', '-', '--', ...folders], commitMessage(changes, info, self, options.message))
  const head = await repo.head()
  if (head !== undefined) report.commit = head
  return report
}

/** A collection's folder must be new, empty, or one an export made (it holds `_collection.json`). */
async function assertOwnFolder(top: string, folder: string): Promise<void> {
  const path = join(top, folder)
  const st = await lstat(path).catch(() => undefined)
  if (st === undefined) return
  if (!st.isDirectory())
    throw new KitsyncError('INVALID_ARGUMENT', `${path} exists and is not a folder: the export of collection folder ${folder} would replace it`)
  const entries = await readdir(path)
  if (entries.length > 0 && !entries.includes(COLLECTION_FILE)) {
    throw new KitsyncError(
      'INVALID_ARGUMENT',
      `${path} holds files that are not a kitsync export (no ${COLLECTION_FILE}): move them, or export to another folder`,
    )
  }
}

async function writeCollection(top: string, plan: CollectionPlan, oldKeys: Map<string, string>): Promise<void> {
  const folderPath = join(top, plan.folder)
  // Private like `export --out` (0600): git keeps no permission bits but the executable one.
  await mkdir(folderPath, { recursive: true, mode: 0o700 })
  const existing = new Set(await readdir(folderPath))
  if (existing.has(COLLECTION_FILE)) {
    try {
      const old = JSON.parse(await readFile(join(folderPath, COLLECTION_FILE), 'utf8')) as unknown
      if (isJsonObject(old) && isJsonObject(old.longKeys))
        for (const [file, key] of Object.entries(old.longKeys)) if (typeof key === 'string') oldKeys.set(`${plan.folder}/${file}`, key)
    } catch {
      // A damaged collection file is rewritten below; the keys of its long names are then unknown for the message.
    }
  }
  const jobs: (() => Promise<void>)[] = []
  for (const [file, text] of plan.files) {
    jobs.push(async () => {
      const path = join(folderPath, file)
      if (existing.has(file) && (await readFile(path, 'utf8').catch(() => undefined)) === text) return
      await writeFile(path, text, { mode: 0o600 })
    })
  }
  // Record files of records that are gone; other files in the folder (a README) stay.
  for (const file of existing) {
    if (plan.files.has(file) || !file.endsWith(RECORD_SUFFIX)) continue
    const stem = file.slice(0, -RECORD_SUFFIX.length)
    if (isLongStem(stem) || decodeStem(stem) !== undefined) jobs.push(() => rm(join(folderPath, file), { force: true }))
  }
  await pool(jobs, IO_CONCURRENCY)
}

async function pool(jobs: (() => Promise<void>)[], width: number): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < jobs.length) await (jobs[next++] as () => Promise<void>)()
  }
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker))
}

/** Subject: what changed; body: who wrote the changed records and when, per device, then per record. */
export function commitMessage(changes: GitExportChange[], info: WorkspaceInfo, self: DeviceRecord | undefined, subject?: string): string {
  const count = (s: GitExportChange['status']): number => changes.filter((c) => c.key !== undefined && c.status === s).length
  const collections = [...new Set(changes.map((c) => c.collection))]
  const parts = [`${count('added')} added`, `${count('changed')} changed`, `${count('deleted')} deleted`].filter((p) => !p.startsWith('0 '))
  const what = parts.length > 0 ? parts.join(', ') : 'settings changed'
  const head = subject ?? `kitsync export: ${what} in ${collections.length === 1 ? collections[0] : `${collections.length} collections`}`
  const lines = [head.split('\n')[0]?.slice(0, 72) ?? head, '']
  const byDevice = new Map<string, { n: number; first: string; last: string }>()
  for (const c of changes) {
    if (c.device === undefined || c.at === undefined) continue
    const d = byDevice.get(c.device)
    if (d === undefined) byDevice.set(c.device, { n: 1, first: c.at, last: c.at })
    else {
      d.n++
      if (c.at < d.first) d.first = c.at
      if (c.at > d.last) d.last = c.at
    }
  }
  if (byDevice.size > 0) {
    lines.push('Written by:')
    for (const [device, d] of [...byDevice].sort(([a], [b]) => (a < b ? -1 : 1)))
      lines.push(`  ${device}: ${d.n} record${d.n === 1 ? '' : 's'}, ${d.first === d.last ? d.first : `${d.first} to ${d.last}`}`)
    lines.push('')
  }
  for (const c of changes.slice(0, MAX_MESSAGE_LINES)) {
    const who = c.device === undefined ? '' : ` by ${c.device} at ${c.at ?? '?'}`
    lines.push(`${c.status.padEnd(7)} ${c.key === undefined ? `${c.collection} settings` : `${c.collection}/${JSON.stringify(c.key)}`}${who}`)
  }
  if (changes.length > MAX_MESSAGE_LINES) lines.push(`... and ${changes.length - MAX_MESSAGE_LINES} more files`)
  lines.push('', `Kitsync-Workspace: ${info.name} (${info.workspaceId})`, `Kitsync-Exported-By: ${self?.name ?? info.deviceId} (${info.deviceId})`)
  return lines.join('\n') + '\n'
}
