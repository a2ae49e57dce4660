import { spawn } from 'node:child_process'
import { mkdir, readdir, realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import { KitsyncError } from '../core/errors.js'

/**
 * The system git, run as a child process for `export --git`. kitsync uses the git already on
 * the machine (wk's users keep their issues in git) rather than a JavaScript git: it commits into
 * an existing repository exactly as the user's own git would (its index format, its config, its
 * line endings), it is fast on large trees, and it adds no dependency. Where git is missing, the
 * export fails with GIT_NOT_FOUND and says so in one line.
 */

export interface GitResult {
  stdout: string
  stderr: string
  code: number
}

/** Git's own prompts and pagers off, its messages in English (they are quoted in errors). */
const GIT_ENV = { GIT_TERMINAL_PROMPT: '0', GIT_PAGER: 'cat', LC_ALL: 'C', LANGUAGE: 'C' }

export class GitRepo {
  private constructor(
    /** Top of the work tree. */
    readonly dir: string,
    private readonly identity: NodeJS.ProcessEnv,
  ) {}

  /**
   * The repository at `dir`: an existing work tree whose top is `dir`, or a new one made there
   * when `dir` does not exist or is empty. Anything else (a non-empty folder that is not a
   * repository, a folder inside another repository) is refused: an export must not commit into
   * a repository it was not pointed at.
   */
  static async open(dir: string, fallbackIdentity: { name: string; email: string }): Promise<{ repo: GitRepo; initialised: boolean }> {
    const target = resolve(dir)
    await git(['--version'], process.cwd())
    await mkdir(target, { recursive: true, mode: 0o700 })
    const real = await realpath(target)
    const top = await git(['rev-parse', '--show-toplevel'], real, true)
    let initialised = false
    if (top.code !== 0 || (await realpath(top.stdout.trim()).catch(() => '')) !== real) {
      const entries = await readdir(real)
      if (entries.length > 0) {
        throw new KitsyncError(
          'INVALID_ARGUMENT',
          top.code === 0
            ? `${target} is inside the git repository ${top.stdout.trim()}, not its top: give the top of a repository, or an empty or new folder`
            : `${target} is not empty and not a git repository: give the top of a repository, or an empty or new folder`,
        )
      }
      await git(['init', '--quiet'], real)
      initialised = true
    }
    // Commits need an author: the user's own if git knows one, else kitsync's.
    const name = await git(['config', 'user.name'], real, true)
    const email = await git(['config', 'user.email'], real, true)
    const identity: NodeJS.ProcessEnv = {}
    if (name.code !== 0 || name.stdout.trim() === '') {
      identity.GIT_AUTHOR_NAME = fallbackIdentity.name
      identity.GIT_COMMITTER_NAME = fallbackIdentity.name
    }
    if (email.code !== 0 || email.stdout.trim() === '') {
      identity.GIT_AUTHOR_EMAIL = fallbackIdentity.email
      identity.GIT_COMMITTER_EMAIL = fallbackIdentity.email
    }
    return { repo: new GitRepo(real, identity), initialised }
  }

  /** Run git in the work tree; pathspecs are literal (no globs). Throws GIT_FAILED on a non-zero exit. */
  run(args: string[], input?: string): Promise<GitResult> {
    return git(['--literal-pathspecs', ...args], this.dir, false, input, this.identity)
  }

  /** The commit HEAD points to, or undefined in a repository without commits. */
  async head(): Promise<string | undefined> {
    const r = await git(['rev-parse', '--verify', '--quiet', 'HEAD'], this.dir, true)
    return r.code === 0 ? r.stdout.trim() : undefined
  }
}

/** Run one git command; `allowFail` returns a non-zero exit instead of throwing GIT_FAILED. */
export function git(args: string[], cwd: string, allowFail = false, input?: string, env: NodeJS.ProcessEnv = {}): Promise<GitResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('git', args, { cwd, env: { ...process.env, ...GIT_ENV, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT')
        reject(new KitsyncError('GIT_NOT_FOUND', 'git was not found on PATH: install git (https://git-scm.com) to export to a git repository'))
      else reject(new KitsyncError('GIT_FAILED', `could not run git: ${e.message}`, { cause: e }))
    })
    child.on('close', (code) => {
      const result = { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code: code ?? 1 }
      if (result.code === 0 || allowFail) resolvePromise(result)
      else {
        const line = result.stderr.split('\n').find((l) => l.trim() !== '') ?? `exit ${result.code}`
        reject(new KitsyncError('GIT_FAILED', `git ${args.find((a) => !a.startsWith('-')) ?? ''} failed: ${line.trim()}`, { details: { exit: result.code } }))
      }
    })
    child.stdin.on('error', () => undefined) // git may exit before reading its input; its exit status tells
    child.stdin.end(input)
  })
}
