/**
 * Missing store files: LevelDB (classic-level) opens a folder without `CURRENT` as a new, empty
 * database and then deletes the table files it does not know. A home that shows it held data
 * (table files in store/, snapshot files, a write-ahead file with updates, or store.marker, which
 * kitsync writes once a store exists) must never be opened that way: kitsync refuses with
 * DATA_CORRUPTION, says what is missing, and leaves every file as it found it. A missing table
 * file, which LevelDB itself refuses, is DATA_CORRUPTION too.
 *
 * Real CLI processes on real files; the library's openWorkspace too.
 */
import { createHash } from 'node:crypto'
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isKitsyncError, openWorkspace } from '../../dist/index.js'
import { cleanup, kitsync, kitsyncOk, makeHome, spawnKitsync, START_TIMEOUT_MS, statOrUndefined } from '../helpers/cli.js'

afterAll(cleanup)

/** A value of about `bytes` bytes of JSON: two of them make a snapshot large enough for a file. */
const big = (tag: string, bytes: number): string => JSON.stringify({ tag, pad: 'x'.repeat(bytes) })

/** Every file under `dir` (recursively), path relative to `dir` -> sha256 of its bytes. */
async function fingerprint(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const walk = async (sub: string): Promise<void> => {
    let entries
    try {
      entries = await readdir(join(dir, sub), { withFileTypes: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    for (const e of entries) {
      const rel = join(sub, e.name)
      if (e.isDirectory()) await walk(rel)
      else
        out.set(
          rel,
          createHash('sha256')
            .update(await readFile(join(dir, rel)))
            .digest('hex'),
        )
    }
  }
  await walk('')
  return out
}

interface HomeData {
  store: Record<string, string>
  snapshots: Record<string, string>
  wal: Record<string, string>
}

/** store/, snapshots/ and store.wal of a home, fingerprinted. */
async function homeData(home: string): Promise<HomeData> {
  const wal = await statOrUndefined(join(home, 'store.wal'))
  return {
    store: Object.fromEntries(await fingerprint(join(home, 'store'))),
    snapshots: Object.fromEntries(await fingerprint(join(home, 'snapshots'))),
    wal:
      wal === undefined
        ? {}
        : {
            'store.wal': createHash('sha256')
              .update(await readFile(join(home, 'store.wal')))
              .digest('hex'),
          },
  }
}

/** A home with records in two collections, one of them large enough to keep its snapshot as a file. */
async function homeWithData(): Promise<string> {
  const home = await makeHome()
  await kitsyncOk(home, ['set', 'notes', 'a', '{"text":"first"}'])
  await kitsyncOk(home, ['set', 'notes', 'b', '{"text":"second"}'])
  await kitsyncOk(home, ['set', 'big', 'one', '-'], { input: big('one', 700_000) })
  await kitsyncOk(home, ['set', 'big', 'two', '-'], { input: big('two', 700_000) })
  const snaps = await readdir(join(home, 'snapshots'))
  expect(
    snaps.filter((f) => f.endsWith('.snap')),
    'the large collection keeps its snapshot in a file',
  ).toHaveLength(1)
  return home
}

/** The one-line error of a refused command: `kitsync: CODE: message`. */
function expectRefused(r: { code: number | null; stdout: string; stderr: string }, mentions: RegExp): void {
  const context = `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`
  expect(r.code, context).toBe(5)
  expect(r.stdout, context).toBe('')
  const lines = r.stderr.trimEnd().split('\n')
  expect(lines, context).toHaveLength(1)
  expect(lines[0], context).toMatch(/^kitsync: DATA_CORRUPTION: /)
  expect(lines[0], context).toMatch(mentions)
}

describe('a store whose files are missing is refused, and nothing is deleted', () => {
  it('store/CURRENT missing: list, peer start and openWorkspace refuse; every file stays', { timeout: 120_000 }, async () => {
    const home = await homeWithData()
    await rm(join(home, 'store', 'CURRENT'))
    const before = await homeData(home)
    expect(
      Object.keys(before.store).some((f) => /\.(ldb|log)$/.test(f)),
      'store/ holds table or log files',
    ).toBe(true)

    const manifest = Object.keys(before.store).find((f) => f.startsWith('MANIFEST-')) as string
    expect(manifest).toBeDefined()
    const r = await kitsync(home, ['list'])
    expectRefused(
      r,
      /store\/CURRENT is missing in .* but store\/ holds \d+ table files?, \d+ log files?, 1 MANIFEST file; snapshots\/ holds 1 snapshot file; store.marker says/,
    )
    expect(r.stderr).toContain(`echo ${manifest} > '${join(home, 'store', 'CURRENT')}'`)
    expect(await homeData(home)).toEqual(before)

    expectRefused(await kitsync(home, ['get', 'notes', 'a']), /store\/CURRENT is missing/)
    expect(await homeData(home)).toEqual(before)

    const peer = spawnKitsync(home, ['peer', 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    const exit = await peer.waitForExit(START_TIMEOUT_MS)
    expectRefused({ code: exit.code, stdout: peer.stdout, stderr: peer.stderr }, /store\/CURRENT is missing/)
    expect(await homeData(home)).toEqual(before)

    const opened = await openWorkspace({ home, mode: 'local', serve: false }).then(
      async (ws) => {
        await ws.close()
        return undefined
      },
      (err: unknown) => err,
    )
    expect(isKitsyncError(opened, 'DATA_CORRUPTION'), String(opened)).toBe(true)
    expect(await homeData(home)).toEqual(before)

    // Put back as the message says, the same store opens with everything in it.
    await writeFile(join(home, 'store', 'CURRENT'), `${manifest}\n`)
    expect(JSON.parse(await kitsyncOk(home, ['get', 'notes', 'b']))).toEqual({ text: 'second' })
    expect(JSON.parse(await kitsyncOk(home, ['get', 'big', 'two'])).tag).toBe('two')
  })

  it('a table file of store/ missing: DATA_CORRUPTION naming it, the other files kept', async () => {
    const home = await homeWithData()
    const table = (await readdir(join(home, 'store'))).find((f) => f.endsWith('.ldb'))
    expect(table, 'store/ holds a table file').toBeDefined()
    await rm(join(home, 'store', table as string))
    // LevelDB rewrites its info log (LOG, LOG.old) and takes LOCK at every open, even a refused one.
    const data = async (): Promise<HomeData> => {
      const d = await homeData(home)
      return { ...d, store: Object.fromEntries(Object.entries(d.store).filter(([f]) => !['LOG', 'LOG.old', 'LOCK'].includes(f))) }
    }
    const before = await data()
    expectRefused(await kitsync(home, ['list']), new RegExp(`store/${table as string}`))
    expect(await data()).toEqual(before)
  })

  it('store/ gone while the home holds snapshot files: refused, snapshots kept', async () => {
    const home = await homeWithData()
    await rm(join(home, 'store'), { recursive: true })
    const before = await homeData(home)
    expectRefused(await kitsync(home, ['list']), /store\/ is missing in .* but snapshots\/ holds 1 snapshot file; store.marker says/)
    expect(await homeData(home)).toEqual(before)
    expect(await statOrUndefined(join(home, 'store')), 'no new store was created').toBeUndefined()
  })

  it('store/ emptied in a home that had a store (store.marker): refused', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['set', 'notes', 'a', '{"text":"first"}'])
    await rm(join(home, 'store'), { recursive: true })
    await mkdir(join(home, 'store'))
    const before = await homeData(home)
    expectRefused(await kitsync(home, ['list']), /store\/CURRENT is missing in .* but store.marker says a store was created here/)
    expect(await homeData(home)).toEqual(before)
  })

  it('a fresh home, and a home that has only workspace.json and identity.key, still start', async () => {
    const fresh = await makeHome()
    expect(await kitsyncOk(fresh, ['list'])).toBe('no collections yet\n')
    await kitsyncOk(fresh, ['set', 'notes', 'a', '{"text":"first"}'])
    expect(JSON.parse(await kitsyncOk(fresh, ['get', 'notes', 'a']))).toEqual({ text: 'first' })
    expect(await statOrUndefined(join(fresh, 'store.marker')), 'the store is marked once it exists').toBeDefined()

    // What a process stopped between writing workspace.json and creating the store leaves.
    const early = await makeHome()
    await mkdir(early, { recursive: true, mode: 0o700 })
    for (const f of ['workspace.json', 'identity.key']) await copyFile(join(fresh, f), join(early, f))
    expect(await kitsyncOk(early, ['list'])).toBe('no collections yet\n')
    await kitsyncOk(early, ['set', 'notes', 'b', '{"text":"second"}'])
    expect(JSON.parse(await kitsyncOk(early, ['get', 'notes', 'b']))).toEqual({ text: 'second' })
  })

  it('a home made before store.marker existed opens as before and gets one', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['set', 'notes', 'a', '{"text":"first"}'])
    await rm(join(home, 'store.marker'), { force: true })
    expect(JSON.parse(await kitsyncOk(home, ['get', 'notes', 'a']))).toEqual({ text: 'first' })
    expect(await statOrUndefined(join(home, 'store.marker'))).toBeDefined()
  })
})
