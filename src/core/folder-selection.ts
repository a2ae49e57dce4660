import ignore, { type Ignore } from 'ignore'
import picomatch from 'picomatch/posix.js'
import { FOLDER_STATE_DIR } from './folder-paths.js'

/**
 * Which files of a shared folder sync: the folder's include/exclude globs (picomatch), the
 * `.kitsyncignore` file at its root (gitignore syntax, the `ignore` library), and defaults that
 * leave out what is large or regenerable. Pure: the caller reads the ignore file and the sizes.
 *
 * Order of the rules (the first that speaks decides):
 *   1. `.kitsync/` (the folder's own state) and the defaults: `.git/`, editor swap, backup and
 *      temp files. Nothing includes them back.
 *   2. `--exclude` globs, then `.kitsyncignore` (whose `!pattern` lines re-include within it).
 *   3. `--include` globs: when there are any, a file must match one (a whitelist).
 *   4. the size cap (default 1 MiB): a larger file is left out, whatever includes it.
 *   5. binaries (not valid UTF-8, or holding NUL): left out unless an `--include` glob matches.
 * A glob without a '/' matches the base name at any depth (`*.duckdb`), as in .gitignore.
 */

export const IGNORE_FILE = '.kitsyncignore'
export const DEFAULT_MAX_FILE_SIZE = 1024 * 1024

/** Editors' swap, backup, lock and temp files, and the OS's droppings: never synced. */
export const DEFAULT_EXCLUDES: readonly string[] = [
  // vim: swap files (.x.swp, .swo, .swn ... and .swx), the 4913 write probe, backups `x~`
  '.*.sw[a-p]',
  '*.swp',
  '*.swx',
  '4913',
  '*~',
  // emacs: auto-save `#x#` and lock links `.#x`
  '#*#',
  '.#*',
  // JetBrains safe write, gedit/GIO, kate, LibreOffice and MS Office locks, browsers' partial downloads
  '*___jb_tmp___',
  '*___jb_old___',
  '.goutputstream-*',
  '*.kate-swp',
  '.~lock.*#',
  '~$*',
  '*.crdownload',
  '*.part',
  // macOS and Windows
  '.DS_Store',
  '._*',
  'Thumbs.db',
  'desktop.ini',
  // kitsync's own temp files of an atomic write (folder/atomic-write.ts), and Syncthing's
  '.*.kitsync-tmp-*',
  '.syncthing.*.tmp',
  '*.tmp',
]

/** Directories never synced: the folder's own state and git's. */
const DEFAULT_EXCLUDED_DIRS = new Set([FOLDER_STATE_DIR, '.git'])

export interface FolderSelectionOptions {
  include?: readonly string[]
  exclude?: readonly string[]
  /** Bytes; files over it are left out. */
  maxFileSize?: number
  /** The text of `.kitsyncignore`, if the folder has one. */
  ignoreFile?: string
}

export type ExcludeReason = 'internal' | 'default' | 'exclude' | 'ignore-file' | 'not-included' | 'too-large' | 'binary'

export type SelectionDecision = { included: true } | { included: false; reason: ExcludeReason }

type Matcher = (path: string) => boolean

function matcher(globs: readonly string[]): Matcher | undefined {
  if (globs.length === 0) return undefined
  const opts = { dot: true }
  const withSlash = globs.filter((g) => g.includes('/'))
  const bare = globs.filter((g) => !g.includes('/'))
  const full = withSlash.length > 0 ? picomatch(withSlash, opts) : undefined
  const base = bare.length > 0 ? picomatch(bare, opts) : undefined
  return (path) => {
    if (full?.(path) === true) return true
    if (base === undefined) return false
    const slash = path.lastIndexOf('/')
    return base(slash < 0 ? path : path.slice(slash + 1))
  }
}

export class FolderSelection {
  readonly maxFileSize: number
  private readonly defaults: Matcher
  private readonly include: Matcher | undefined
  private readonly exclude: Matcher | undefined
  private readonly ignore: Ignore | undefined

  constructor(options: FolderSelectionOptions = {}) {
    this.maxFileSize = options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE
    this.defaults = matcher(DEFAULT_EXCLUDES) as Matcher
    this.include = matcher(options.include ?? [])
    this.exclude = matcher(options.exclude ?? [])
    this.ignore = options.ignoreFile === undefined ? undefined : ignore({ allowRelativePaths: false }).add(options.ignoreFile)
  }

  /**
   * Whether a directory is walked and watched at all (a 'false' prunes everything under it).
   * Include globs never prune: `--include '**\/*.json'` still needs every directory walked.
   */
  directory(path: string): SelectionDecision {
    if (path === '') return { included: true } // the folder itself
    const parts = path.split('/')
    if (parts[0] === FOLDER_STATE_DIR) return { included: false, reason: 'internal' }
    if (parts.some((p) => DEFAULT_EXCLUDED_DIRS.has(p))) return { included: false, reason: 'default' }
    // Each ancestor too: `node_modules` excludes a/node_modules/x as well as a/node_modules.
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/')
      if (this.exclude !== undefined && (this.exclude(dir) || this.exclude(`${dir}/`))) return { included: false, reason: 'exclude' }
      if (this.ignore?.ignores(`${dir}/`) === true) return { included: false, reason: 'ignore-file' }
    }
    return { included: true }
  }

  /** Rules 1-3: what the path alone decides (before the file is read). */
  path(path: string): SelectionDecision {
    const slash = path.lastIndexOf('/')
    if (slash >= 0) {
      const dir = this.directory(path.slice(0, slash))
      if (!dir.included) return dir
    } else if (path === FOLDER_STATE_DIR) {
      return { included: false, reason: 'internal' }
    }
    if (this.defaults(path) || DEFAULT_EXCLUDED_DIRS.has(path)) return { included: false, reason: 'default' }
    if (this.exclude?.(path) === true) return { included: false, reason: 'exclude' }
    if (this.ignore?.ignores(path) === true) return { included: false, reason: 'ignore-file' }
    if (this.include !== undefined && !this.include(path)) return { included: false, reason: 'not-included' }
    return { included: true }
  }

  /** Rule 4: the size alone (a file over the cap is not even read). */
  size(size: number): SelectionDecision {
    return size > this.maxFileSize ? { included: false, reason: 'too-large' } : { included: true }
  }

  /** All the rules, for a file whose size and kind are known. */
  file(path: string, info: { size: number; binary: boolean }): SelectionDecision {
    const byPath = this.path(path)
    if (!byPath.included) return byPath
    const bySize = this.size(info.size)
    if (!bySize.included) return bySize
    if (info.binary && this.include?.(path) !== true) return { included: false, reason: 'binary' }
    return { included: true }
  }
}
