/**
 * Real faults for the fault-injection tier (test/faults/): a small tmpfs that fills up, and a
 * second unix user who tries to read or take what kitsync owns. Both need root (CI runs as
 * root); a test file that needs them skips with a printed reason elsewhere, never fails.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Why this machine cannot make real faults, or undefined when it can (root on Linux). */
export function rootSkipReason(what: string): string | undefined {
  if (process.platform !== 'linux') return `${what} needs Linux (running on ${process.platform})`
  if (process.getuid?.() !== 0) return `${what} needs root (running as uid ${process.getuid?.() ?? '?'})`
  return undefined
}

/** Print why a test file is skipped, so a skip is never silent. */
export function announceSkip(file: string, reason: string | undefined): boolean {
  if (reason === undefined) return false
  console.warn(`SKIPPED ${file}: ${reason}`)
  return true
}

export interface Tmpfs {
  /** The mount point (a fresh, empty folder). */
  dir: string
  /** Change the size of the mounted file system (MiB), keeping its content. */
  resize(sizeMiB: number): Promise<void>
  /** Unmount and remove the mount point. */
  dispose(): Promise<void>
}

/** Mount a tmpfs of `sizeMiB` on a fresh folder (root only). */
export async function mountTmpfs(sizeMiB: number, prefix = 'ks-fault-'): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0755`, 'tmpfs', dir])
  return {
    dir,
    resize: async (size) => {
      await run('mount', ['-o', `remount,size=${size}m`, dir])
    },
    dispose: async () => {
      await run('umount', ['-l', dir]).catch(() => undefined) // already unmounted: nothing to do
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * Mount a small ext2 file system whose inodes (128 bytes) keep times in whole seconds, through a
 * loop device (root only): two writes within one second leave the same mtime and ctime, as on
 * the coarse file systems (FAT, some network ones) the folder layer must not be fooled by.
 */
export async function mountCoarseTimes(sizeMiB = 8): Promise<{ dir: string; dispose(): Promise<void> }> {
  const base = await mkdtemp(join(tmpdir(), 'ks-coarse-'))
  const image = join(base, 'fs.img')
  const dir = join(base, 'mnt')
  await run('truncate', ['-s', `${sizeMiB}M`, image])
  await run('mkfs.ext2', ['-q', '-F', '-I', '128', image])
  await run('mkdir', [dir])
  await run('mount', ['-o', 'loop', image, dir])
  return {
    dir,
    dispose: async () => {
      await run('umount', ['-l', dir]).catch(() => undefined) // already unmounted: nothing to do
      await rm(base, { recursive: true, force: true })
    },
  }
}

export interface UnixUser {
  name: string
  uid: number
  gid: number
  /** Run a command as this user (no supplementary groups); resolves with its output and exit code. */
  exec(file: string, args: string[], options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<{ code: number; stdout: string; stderr: string }>
  dispose(): Promise<void>
}

/** Create a throwaway system user with no home and no login (root only). */
export async function createUnixUser(): Promise<UnixUser> {
  const name = `ksfault${process.pid}${Math.floor(Math.random() * 1000)}`
  await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name])
  const uid = Number((await run('id', ['-u', name])).stdout.trim())
  const gid = Number((await run('id', ['-g', name])).stdout.trim())
  return {
    name,
    uid,
    gid,
    exec: async (file, args, options = {}) => {
      try {
        const { stdout, stderr } = await run('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--', file, ...args], {
          timeout: options.timeoutMs ?? 20_000,
          env: { PATH: process.env.PATH, ...options.env },
        })
        return { code: 0, stdout, stderr }
      } catch (err) {
        const e = err as Error & { code?: number | string; stdout?: string; stderr?: string }
        return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message }
      }
    },
    dispose: async () => {
      await run('userdel', [name]).catch(() => undefined) // gone already: nothing to remove
    },
  }
}
