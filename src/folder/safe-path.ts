import { lstat, readdir, unlink, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { caseKey, checkFolderPath, unsafePath, type PathRefusal } from '../core/folder-paths.js'

/**
 * A path from a peer turned into an absolute path inside the folder, or refused. The syntax is
 * checked first (core/folder-paths.ts: no '..', not absolute, no NUL, no backslash, not into
 * .kitsync/ or .git/); then every component that exists is looked at with lstat: a symlink
 * anywhere on the way is refused (a planted `docs -> /etc` must not turn `docs/passwd` into
 * /etc/passwd), so is a file where a directory should be. On a case-insensitive file system a
 * name that differs only by case from an existing entry is a conflict, not an overwrite.
 *
 * The last component may be a symlink only for the caller to replace it (rename(2) replaces the
 * link itself, never its target); `allowFinalSymlink` says so. What remains between this check
 * and the write is a local user racing the folder's own owner, outside a peer's reach.
 */
export type SafePath = { ok: true; abs: string; parts: string[] } | { ok: false; reason: PathRefusal }

export interface SafePathOptions {
  caseInsensitive?: boolean
  allowFinalSymlink?: boolean
  /**
   * Directories (absolute) already found to be real directories by this check in the same batch
   * of work (run in the folder's queue): not looked at again, and the ones found here are added.
   * A batch of 1,000 files in 20 directories then makes 20 lstats of them, not 1,000.
   */
  checkedDirs?: Set<string>
  /**
   * The caller only reads the file, opening it with O_NOFOLLOW (file-state.ts readFileState): the
   * last component is not looked at here, the open refuses a symlink there (ELOOP).
   */
  readNoFollow?: boolean
  /** Paths (as given) found not to exist, the path or a directory on its way, are added here. */
  absent?: Set<string>
}

export async function resolvePeerPath(root: string, path: unknown, options: SafePathOptions = {}): Promise<SafePath> {
  const check = checkFolderPath(path)
  if (!check.ok) return check
  let dir = root
  for (let i = 0; i < check.parts.length; i++) {
    const part = check.parts[i] as string
    const last = i === check.parts.length - 1
    if (options.caseInsensitive === true) {
      const clash = await caseClash(dir, part)
      if (clash) return { ok: false, reason: 'CASE_CONFLICT' }
    }
    const abs = join(dir, part)
    if (last && options.readNoFollow === true) break
    if (!last && options.checkedDirs?.has(abs) === true) {
      dir = abs
      continue
    }
    let st
    try {
      st = await lstat(abs)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        options.absent?.add(path as string)
        return { ok: true, abs: join(root, ...check.parts), parts: check.parts }
      }
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return { ok: false, reason: 'NOT_A_DIRECTORY' }
      throw err
    }
    if (st.isSymbolicLink() && !(last && options.allowFinalSymlink === true)) return { ok: false, reason: 'SYMLINK' }
    if (!last && !st.isDirectory()) return { ok: false, reason: 'NOT_A_DIRECTORY' }
    if (!last) options.checkedDirs?.add(abs)
    dir = abs
  }
  return { ok: true, abs: join(root, ...check.parts), parts: check.parts }
}

/** resolvePeerPath, throwing INVALID_NAME with the reason in `details.reason`. */
export async function safePeerPath(root: string, path: unknown, options: SafePathOptions = {}): Promise<string> {
  const r = await resolvePeerPath(root, path, options)
  if (!r.ok) throw unsafePath(path, r.reason)
  return r.abs
}

/** An entry of `dir` whose name is `name` by case only, and not `name` itself. */
async function caseClash(dir: string, name: string): Promise<boolean> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  const key = caseKey(name)
  return names.some((n) => n !== name && caseKey(n) === key)
}

/**
 * Whether the file system of `dir` folds case: create a probe with lower case letters and look
 * for it in upper case. `dir` must exist and be writable (the folder's .kitsync/).
 */
export async function isCaseInsensitive(dir: string): Promise<boolean> {
  const probe = join(dir, `case-probe-${process.pid}-${Date.now().toString(36)}`)
  await writeFile(probe, '', { flag: 'wx', mode: 0o600 })
  try {
    await lstat(join(dir, basename(probe).toUpperCase()))
    return true
  } catch {
    // ENOENT: the upper-case name is another file, so case matters here
    return false
  } finally {
    await unlink(probe)
  }
}
