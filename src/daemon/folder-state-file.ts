import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FOLDER_STATE_DIR } from '../core/folder-paths.js'
import { debugLog } from '../core/debug-log.js'
import type { CaptureLedger } from '../folder/capture-ledger.js'
import type { FileState } from '../folder/file-state.js'

const log = debugLog('folder:state')

/**
 * What a placed folder remembers across restarts, in `.kitsync/state.json` (0600): per path, the
 * disk state its document captured or wrote and the document snapshot (base) the disk then held;
 * per fileId, the manifest hash last brought to disk. With it a restart tells a local edit made
 * while the peer was down (the disk differs from what was captured: rebased from the base, so a
 * peer's edit merged meanwhile is kept) from a peer's change to write out (the record's hash
 * moved on), and only those files' documents are opened.
 */
export interface FolderStateFile {
  files: Record<string, { state: FileState; base?: string }>
  handled: Record<string, string>
}

const FILE = 'state.json'

export async function readFolderState(root: string): Promise<FolderStateFile> {
  try {
    const raw = JSON.parse(await readFile(join(root, FOLDER_STATE_DIR, FILE), 'utf8')) as Partial<FolderStateFile>
    return { files: raw.files ?? {}, handled: raw.handled ?? {} }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`${root}: state.json unreadable; the folder is reconciled from scratch`, err)
    return { files: {}, handled: {} }
  }
}

/** Load what was captured into the ledger. */
export function loadLedger(ledger: CaptureLedger, state: FolderStateFile): void {
  for (const [path, f] of Object.entries(state.files)) ledger.record(path, f.state, f.base === undefined ? undefined : Buffer.from(f.base, 'base64'))
}

/** Write the state atomically (temp file, rename). */
export async function writeFolderState(root: string, paths: Iterable<string>, ledger: CaptureLedger, handled: ReadonlyMap<string, string>): Promise<void> {
  const files: FolderStateFile['files'] = {}
  for (const path of paths) {
    const state = ledger.captured(path)
    if (state === undefined) continue
    const base = ledger.base(path)
    files[path] = base === undefined ? { state } : { state, base: Buffer.from(base).toString('base64') }
  }
  const dir = join(root, FOLDER_STATE_DIR)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // Named as atomic-write.ts names its temp files, so removeTempFiles clears one a crash left.
  const temp = join(dir, `.${FILE}.kitsync-tmp-${randomBytes(6).toString('hex')}`)
  await writeFile(temp, JSON.stringify({ files, handled: Object.fromEntries(handled) }), { mode: 0o600 })
  await rename(temp, join(dir, FILE))
}
