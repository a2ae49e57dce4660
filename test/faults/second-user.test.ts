import { chmod, chown, lstat, mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { homePaths } from '../../dist/store/home.js'
import { cleanup, expectCliError, kitsync, kitsyncOk, makeTempDir, Proc, spawnKitsync, startPeer, stopProc } from '../helpers/cli.js'
import { NET } from '../helpers/devices.js'
import { announceSkip, createUnixUser, rootSkipReason, type UnixUser } from '../helpers/faults.js'

/**
 * A second real unix user on the same machine tries to take the control socket of a deep home
 * folder, and to read a home folder that existed before kitsync used it (issue 19, items 6, 7).
 */

const SKIP = announceSkip('test/faults/second-user.test.ts', rootSkipReason('a second unix user'))
const DEADLINE = 20_000

// Listens on the path it is given, as whoever runs it, and reports every connection and every
// byte it receives; it closes each connection at once, so a client waiting for an answer ends.
const IMPOSTOR = `
import { createServer } from 'node:net'
import { chmodSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
const path = process.argv[2]
mkdirSync(dirname(path), { recursive: true })
createServer((s) => {
  console.log('connection')
  s.on('error', () => undefined)
  s.on('data', (d) => { console.log('bytes ' + d.length + ' ' + JSON.stringify(d.toString())); s.destroy() })
}).listen(path, () => { chmodSync(path, 0o777); console.log('listening') })
`

/** A scratch folder other users may enter, with a world-writable sticky `tmp/` inside (like /tmp). */
async function sharedScratch(): Promise<{ base: string; tmp: string }> {
  const base = await makeTempDir('ks-2u-')
  await chmod(base, 0o755)
  const tmp = join(base, 'tmp')
  await mkdir(tmp)
  await chmod(tmp, 0o1777)
  return { base, tmp }
}

/** The control socket path kitsync computes for `home` with TMPDIR set to `tmp`. */
function socketFor(home: string, tmp: string): string {
  const saved = process.env.TMPDIR
  process.env.TMPDIR = tmp
  try {
    return homePaths(home).socket
  } finally {
    if (saved === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = saved
  }
}

/** Every folder and file under `dir` (itself included). */
async function walk(dir: string): Promise<string[]> {
  const out = [dir]
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...(await walk(path)))
    else out.push(path)
  }
  return out
}

describe.skipIf(SKIP)('a second unix user', () => {
  let other: UnixUser
  beforeAll(async () => {
    other = await createUnixUser()
  })
  afterAll(async () => {
    await cleanup()
    await other?.dispose()
  })

  it('cannot take the control socket of a deep home folder: the CLI refuses to talk to it', async () => {
    const { base, tmp } = await sharedScratch()
    const home = join(base, 'h'.repeat(100))
    const socket = socketFor(home, tmp)
    expect(socket.startsWith(tmp)).toBe(true)
    const script = join(base, 'impostor.mjs')
    await writeFile(script, IMPOSTOR, { mode: 0o644 })
    const impostor = new Proc(
      'setpriv',
      ['--reuid', String(other.uid), '--regid', String(other.gid), '--clear-groups', '--', process.execPath, script, socket],
      { env: { TMPDIR: tmp } },
    )
    await impostor.waitForLine((l) => l === 'listening', DEADLINE, 'the impostor listening')
    const env = { TMPDIR: tmp }
    // A write with a secret-looking value: it must never reach the impostor.
    const set = await kitsync(home, ['set', 'notes', 'pin', '{"pin":"SECRET-4242"}'], { env })
    expect(
      impostor.lines.filter((l) => l !== 'listening'),
      impostor.transcript(),
    ).toEqual([])
    expect(expectCliError(set, 'PERMISSION_DENIED', 4)).toMatch(/control socket|not owned|belongs/)
    // A peer does not serve (nor remove) a socket another user placed there.
    const start = await kitsync(home, ['peer', 'start', ...NET], { env })
    expect(
      impostor.lines.filter((l) => l !== 'listening'),
      impostor.transcript(),
    ).toEqual([])
    expectCliError(start, 'PERMISSION_DENIED', 4)
    expect((await lstat(socket)).uid).toBe(other.uid)
    await stopProc(impostor)
  })

  it('a deep home folder gets its socket in a private folder that only its user can enter', async () => {
    const { base, tmp } = await sharedScratch()
    const home = join(base, 'd'.repeat(100))
    const socket = socketFor(home, tmp)
    const env = { TMPDIR: tmp }
    const proc = spawnKitsync(home, ['peer', 'start', '--json', ...NET], { env })
    await proc.waitForLine((l) => l.includes('"started"'), DEADLINE, 'the started line')
    const dir = await lstat(join(socket, '..'))
    expect(dir.isDirectory() && !dir.isSymbolicLink()).toBe(true)
    expect(dir.mode & 0o777).toBe(0o700)
    expect(dir.uid).toBe(process.getuid?.())
    await kitsyncOk(home, ['set', 'notes', 'a', '{"x":1}'], { env })
    const listing = await other.exec('ls', [join(socket, '..')])
    expect(listing.code).not.toBe(0)
    expect(listing.stderr).toMatch(/Permission denied/)
    await stopProc(proc)
  })

  it('cannot read a home folder that existed with mode 0755 before kitsync used it', async () => {
    const { base } = await sharedScratch()
    const home = join(base, 'home')
    await mkdir(home)
    await chmod(home, 0o755)
    await kitsyncOk(home, ['set', 'notes', 'pin', '{"pin":"SECRET-4242"}'])
    const peer = await startPeer(home)
    await kitsyncOk(home, ['set', 'notes', 'pin2', '{"pin":"SECRET-4343"}'])
    // Snapshot files too: a collection over 1 MiB, compacted by the peer.
    const big = JSON.stringify({ pin: 'SECRET-4444', pad: 'x'.repeat(300_000) })
    for (let i = 0; i < 5; i++) await kitsyncOk(home, ['set', 'big', `r${i}`, '-'], { input: big })
    const paths = homePaths(home)
    await stopProc(peer.proc)
    const entries = await walk(home)
    for (const must of [paths.store, paths.snapshots, paths.workspace, paths.wal, paths.identity]) expect(entries).toContain(must)
    expect(entries.some((p) => p.endsWith('.snap'))).toBe(true)
    expect(entries.some((p) => p.endsWith('.ldb') || p.endsWith('.log'))).toBe(true)
    for (const path of entries) {
      const st = await lstat(path)
      expect({ path, mode: (st.mode & 0o777).toString(8) }).toEqual({ path, mode: st.isDirectory() ? '700' : '600' })
    }
    for (const path of [home, paths.store, paths.snapshots]) {
      const r = await other.exec('ls', ['-la', path])
      expect({ path, code: r.code === 0 ? 0 : 'failed', denied: /Permission denied/.test(r.stderr) }).toEqual({ path, code: 'failed', denied: true })
    }
    for (const path of entries.filter((p) => p !== home)) {
      const r = await other.exec('cat', [path])
      expect({ path, code: r.code === 0 ? 0 : 'failed', denied: /Permission denied/.test(r.stderr) }).toEqual({ path, code: 'failed', denied: true })
    }
    const grep = await other.exec('grep', ['-r', 'SECRET-4', home])
    expect(grep.stdout).toBe('')
    expect(grep.code).not.toBe(0)
  })

  it('refuses a home folder that another user owns, and leaves it as it was', async () => {
    const { base } = await sharedScratch()
    const home = join(base, 'theirs')
    await mkdir(home)
    await chmod(home, 0o755)
    await chown(home, other.uid, other.gid)
    const r = await kitsync(home, ['set', 'notes', 'a', '{"x":1}'])
    expect(expectCliError(r, 'PERMISSION_DENIED', 4)).toContain(home)
    const st = await lstat(home)
    expect({ mode: st.mode & 0o777, uid: st.uid, entries: await readdir(home) }).toEqual({ mode: 0o755, uid: other.uid, entries: [] })
  })
})
