import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { kitsync, kitsyncJson, kitsyncOk, makeHome, makeTempDir, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest } from '../helpers/devices.js'

/**
 * Issue 22, a kill -9 while a device receives a shared folder: B's peer (a real CLI process) is
 * killed with SIGKILL once its initial sync of A's 1,000 files has written a few of them. What
 * B's folder holds at that moment is only whole files, each A's content (the atomic write: old
 * or new, never a mix); after B's peer starts again, B ends with every file exactly as on A,
 * no temp file left, no conflict copy on either side (files written before the kill but not
 * yet recorded in B's state are recognised as A's, not taken for local edits), A's files
 * untouched, and every file synced in `folder status`.
 */

const { peer, invite, forget } = devicesOfTest()
const PEER_ARGS = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http-port', '0']
const WAIT = 60_000
const TEXT_FILES = 960
const BINARY_FILES = 40
const TOTAL = TEXT_FILES + BINARY_FILES

/** Every regular file under `dir` (relative path to content), the folder's own `.kitsync` left out. */
async function tree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue
    const abs = join(e.parentPath, e.name)
    const rel = relative(dir, abs)
    if (rel.startsWith('.kitsync/') || rel.startsWith('.kitsync-trash/')) continue
    out.set(rel, await readFile(abs))
  }
  return out
}

const isTemp = (path: string): boolean => path.split('/').some((part) => part.startsWith('.') && part.includes('.kitsync-tmp-'))

async function fill(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  for (let i = 0; i < TEXT_FILES; i++) {
    const lines = Array.from({ length: 20 + (i % 80) }, (_, n) => `scenario ${i} line ${n}: ${'x'.repeat((i * 7 + n) % 60)}`)
    files.set(`s${i % 10}/f${i}.yaml`, Buffer.from(lines.join('\n') + '\n'))
  }
  for (let i = 0; i < BINARY_FILES; i++) files.set(`bin/b${i}.dat`, createHash('sha512').update(`blob ${i}`).digest())
  for (const [path, data] of files) {
    await mkdir(join(dir, path, '..'), { recursive: true })
    await writeFile(join(dir, path), data)
  }
  return files
}

describe('kill -9 while a device receives a shared folder', () => {
  it('leaves only whole files; after the restart B holds every file as on A, with no temp file and no conflict copy', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, PEER_ARGS)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    const pb = await peer(hb, PEER_ARGS)
    const da = join(await makeTempDir('ks-rka-'), 'sim')
    const db = join(await makeTempDir('ks-rkb-'), 'sim')
    await mkdir(da)
    const files = await fill(da)
    expect(files.size).toBe(TOTAL)
    // Binaries sync only when included explicitly (the default leaves them out).
    await kitsyncOk(ha, ['folder', 'add', da, '--name', 'sim', '--include', '**', '--json'])
    await waitUntil(
      async () => ((await kitsyncJson<{ name: string }[]>(hb, ['folder', 'list', '--json'])).some((f) => f.name === 'sim') ? true : undefined),
      WAIT,
      'the folder on B',
    )

    // `folder add` returns once the folder is placed and watched; the workspace's files are then
    // written in the background (FolderEngine.start `background`): B is killed while they are.
    const adding = kitsync(hb, ['folder', 'add', db, '--name', 'sim', '--json'])
    // As soon as a few files are there: kill B (each readdir is a few ms; the initial sync takes seconds).
    let atKill = 0
    await waitUntil(
      async () => {
        const names = (await readdir(db, { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile() && !e.name.startsWith('.'))
        if (names.length < 20) return undefined
        pb.proc.kill('SIGKILL')
        atKill = names.length
        return true
      },
      WAIT,
      'the first files on B',
    )
    expect(await stopProc(pb.proc, 'SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' })
    forget(pb)
    // Its exit code is not the point: 0 if it returned before the kill (the usual case), else its peer was gone.
    await adding
    // The kill landed in the middle of the initial sync: a file on B is whole and A's.
    const killed = await tree(db)
    const whole = [...killed].filter(([p]) => !isTemp(p))
    expect(atKill).toBeLessThan(TOTAL)
    expect(whole.length).toBeLessThan(TOTAL)
    for (const [path, data] of whole) expect({ path, same: files.get(path)?.equals(data) }).toEqual({ path, same: true })

    await peer(hb, PEER_ARGS)
    await waitUntil(
      async () => {
        const now = await tree(db)
        if (now.size !== TOTAL) return undefined
        for (const [path, data] of files) if (!now.get(path)?.equals(data)) return undefined
        return true
      },
      WAIT,
      'every file of A on B',
    )
    const after = [...(await tree(db)).keys()]
    expect(after.filter(isTemp)).toEqual([])
    expect(after.filter((p) => p.includes('.conflict-'))).toEqual([])
    const onA = await tree(da)
    expect([...onA.keys()].filter((p) => p.includes('.conflict-'))).toEqual([])
    expect(onA.size).toBe(TOTAL)
    for (const [path, data] of files) expect(onA.get(path)?.equals(data)).toBe(true)
    const status = await kitsyncJson<{ files: { path: string; state: string }[] }>(hb, ['folder', 'status', 'sim', '--json'])
    const states = new Map<string, number>()
    for (const f of status.files) if (!f.path.endsWith('/') && files.has(f.path)) states.set(f.state, (states.get(f.state) ?? 0) + 1)
    expect(Object.fromEntries(states)).toEqual({ synced: TOTAL })
  }, 240_000)
})
