import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'

/** Network namespaces for e2e tests: created by the test, removed after it, never the machine's own interfaces. */

export const run = promisify(execFile)

export async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 10_000 })).stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`ip ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`)
  }
}

/**
 * Why this machine cannot run a network-namespace test (not root, or no `ip` command), or
 * undefined when it can. Test files skip with this reason printed (announceSkip in faults.ts).
 */
export function netnsSkipReason(testFile: string): string | undefined {
  if (process.platform !== 'linux') return `${testFile} needs Linux network namespaces (running on ${process.platform})`
  if (process.getuid?.() !== 0) return `${testFile} needs root (it creates network namespaces with 'ip netns add'); running as uid ${process.getuid?.() ?? '?'}`
  if (spawnSync('ip', ['-V']).status !== 0) return `${testFile} needs the 'ip' command (iproute2) on PATH`
  return undefined
}

/** Fail when this machine cannot run the test (a test file that got past netnsSkipReason). */
export async function requireRootAndIp(testFile: string): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error(`${testFile} needs root (it creates network namespaces with 'ip netns add'); running as uid ${process.getuid?.() ?? '?'}`)
  }
  await run('ip', ['-V']).catch((err: Error) => {
    throw new Error(`${testFile} needs the 'ip' command (iproute2) on PATH: ${err.message}`)
  })
}

/**
 * The namespaces of one test file, named `<prefix><pid><suffix>` so that a later run finds
 * the ones an earlier, killed run left behind.
 */
export class Namespaces {
  readonly created: string[] = []
  constructor(readonly prefix: string) {}

  name(suffix: string): string {
    return `${this.prefix}${process.pid}${suffix}`
  }

  async add(name: string): Promise<void> {
    await ip('netns', 'add', name)
    this.created.push(name)
    await ip('-n', name, 'link', 'set', 'lo', 'up')
  }

  async removeAll(): Promise<void> {
    for (const ns of this.created.splice(0)) await ip('netns', 'del', ns).catch(() => undefined)
  }

  /** Namespaces of this prefix left by a run whose process is gone. */
  async removeStale(): Promise<void> {
    const re = new RegExp(`^(${this.prefix}(\\d+)[a-z])\\b`)
    for (const line of (await ip('netns', 'list')).split('\n')) {
      const m = re.exec(line)
      if (m === null || Number(m[2]) === process.pid) continue
      let alive = true
      try {
        process.kill(Number(m[2]), 0)
      } catch {
        alive = false
      }
      if (!alive) await ip('netns', 'del', m[1] as string).catch(() => undefined)
    }
  }
}
