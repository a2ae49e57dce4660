/**
 * `kitsync export --git` and `kitsync import` end to end: real CLI processes on real LevelDB
 * homes, the system git on real folders. Git runs with no global or system config (the export's
 * own author is used) so the machine's settings do not change what is tested.
 */
import { execFile } from 'node:child_process'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { openWorkspace } from '../../dist/index.js'
import {
  cleanup,
  expectCliError,
  expectJsonCliError,
  fileMode,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  makeTempDir,
  startPeer,
  stopProc,
  statOrUndefined,
} from '../helpers/cli.js'

const run = promisify(execFile)
const GIT_ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0' }
const env = { env: GIT_ENV }

afterEach(cleanup)

interface GitReport {
  dir: string
  initialised: boolean
  commit?: string
  collections: number
  records: number
  changes: { collection: string; key?: string; path: string; status: string; device?: string; at?: string }[]
}
interface ImportReport {
  dryRun: boolean
  added: number
  changed: number
  unchanged: number
  deleted: number
  missing: number
  collections: { collection: string; kind: string; added: number; changed: number; unchanged: number; created: boolean }[]
}

async function git(dir: string, args: string[]): Promise<string> {
  return (await run('git', args, { cwd: dir, env: GIT_ENV })).stdout
}

const commits = async (dir: string): Promise<number> => Number((await git(dir, ['rev-list', '--count', 'HEAD'])).trim())

/** The records of a workspace, as `kitsync export` gives them. */
async function records(home: string): Promise<Record<string, Record<string, unknown>>> {
  return (await kitsyncJson<{ collections: Record<string, Record<string, unknown>> }>(home, ['export'])).collections
}

const LONG_KEY = 'Long key ' + 'é/'.repeat(200)
const TRICKY_KEYS = ['..', '.', 'a/b', 'CON', 'con', 'nul.txt', 'Alert', 'alert', 'é', 'e\u0301', '日本', LONG_KEY, '_collection']

/** A home with records of several kinds and keys that are hard to name as files (filled through the library, in this process). */
async function filledHome(): Promise<string> {
  const home = await makeHome()
  const ws = await openWorkspace({ home, mode: 'local', serve: false, name: 'laptop' })
  try {
    await ws.set('alerts', 'Alert-7', { symbol: 'BTCUSD', price: 100000, active: true })
    await ws.set('alerts', 'alert-7', { symbol: 'ETHUSD', price: 4000 })
    await Promise.all(TRICKY_KEYS.map((key, i) => ws.set('notes', key, { i, key })))
    await ws.append('journal', { text: 'bought', symbol: 'BTCUSD' })
    await ws.set('issues', 'wk-1', { title: 'Crash on start', status: 'open', tags: ['bug'], notes: ['seen on 1.2'] })
    await ws.configure('Drafts', { kind: 'templates', limits: { maxRecords: 20 } })
    await ws.set('Drafts', 'one', { layout: 'grid' })
  } finally {
    await ws.close()
  }
  return home
}

describe('kitsync export --git', () => {
  it('commits every record as a file, then only what changed, and nothing when nothing did', async () => {
    const home = await filledHome()
    const repo = join(await makeTempDir(), 'export')
    const first = await kitsyncJson<GitReport>(home, ['export', '--git', repo], env)
    expect(first).toMatchObject({ initialised: true, collections: 5, records: 2 + TRICKY_KEYS.length + 3 })
    expect(first.commit).toMatch(/^[0-9a-f]{40}$/)
    expect(await commits(repo)).toBe(1)
    const tracked = (await git(repo, ['ls-files', '-z'])).split('\0').filter((f) => f !== '')
    // One file per record and one _collection.json per collection; names unique even ignoring case.
    expect(tracked).toHaveLength(first.records + 5)
    expect(new Set(tracked.map((f) => f.toLowerCase())).size).toBe(tracked.length)
    expect(tracked).toEqual(
      expect.arrayContaining(['alerts/!alert-7.json', 'alerts/alert-7.json', 'notes/%2e%2e.json', 'notes/a%2fb.json', 'notes/%63on.json']),
    )
    expect(tracked).toContain('!drafts/_collection.json')
    for (const f of tracked) expect(f, f).toMatch(/^[a-z0-9._!%~-]+\/[a-z0-9._!%~-]+$/)
    expect(JSON.parse(await readFile(join(repo, 'alerts', '!alert-7.json'), 'utf8'))).toEqual({ symbol: 'BTCUSD', price: 100000, active: true })
    // Private, as `export --out`: nothing readable by another local user.
    expect(await fileMode(repo)).toBe(0o700)
    expect(await fileMode(join(repo, 'alerts'))).toBe(0o700)
    expect(await fileMode(join(repo, 'alerts', '!alert-7.json'))).toBe(0o600)
    expect(JSON.parse(await readFile(join(repo, '!drafts', '_collection.json'), 'utf8'))).toMatchObject({
      collection: 'Drafts',
      kind: 'templates',
      limits: { maxRecords: 20 },
    })

    // Nothing changed: no commit.
    const again = await kitsyncJson<GitReport>(home, ['export', '--git', repo], env)
    expect(again.commit).toBeUndefined()
    expect(again.changes).toEqual([])
    expect(await commits(repo)).toBe(1)
    expect(await kitsyncOk(home, ['export', '--git', repo], env)).toMatch(/no commit/)

    // One record changed: one commit with exactly that file, its writer and time in the message.
    const before = Date.now()
    await kitsyncOk(home, ['set', 'alerts', 'Alert-7', '{"symbol":"BTCUSD","price":120000,"active":true}'])
    const third = await kitsyncJson<GitReport>(home, ['export', '--git', repo], env)
    expect(third.changes).toEqual([expect.objectContaining({ collection: 'alerts', key: 'Alert-7', path: 'alerts/!alert-7.json', status: 'changed' })])
    expect(await commits(repo)).toBe(2)
    expect((await git(repo, ['show', '--name-status', '--format=', 'HEAD'])).trim()).toBe('M\talerts/!alert-7.json')
    const at = Date.parse(third.changes[0]?.at ?? '')
    expect(at).toBeGreaterThanOrEqual(before - 1000)
    const message = await git(repo, ['log', '-1', '--format=%B'])
    expect(message.split('\n')[0]).toBe('kitsync export: 1 changed in alerts')
    expect(message).toContain(`changed alerts/"Alert-7" by ${third.changes[0]?.device ?? '?'} at ${third.changes[0]?.at ?? '?'}`)
    expect(message).toMatch(/Written by:\n {2}this device \(12D3KooW\w+\): 1 record, /)

    // A deleted record: its file goes, in a commit of its own.
    await kitsyncOk(home, ['del', 'notes', 'a/b'])
    const fourth = await kitsyncJson<GitReport>(home, ['export', '--git', repo], env)
    expect(fourth.changes).toEqual([expect.objectContaining({ key: 'a/b', status: 'deleted' })])
    expect((await git(repo, ['show', '--name-status', '--format=', 'HEAD'])).trim()).toBe('D\tnotes/a%2fb.json')
  })

  it('commits into an existing repository without touching its other files or what is staged there', async () => {
    const home = await filledHome()
    const repo = await makeTempDir()
    await git(repo, ['init', '--quiet'])
    await writeFile(join(repo, 'README.md'), 'my notes\n')
    await git(repo, ['add', 'README.md'])
    await git(repo, ['-c', 'user.name=me', '-c', 'user.email=me@example.invalid', 'commit', '--quiet', '-m', 'mine'])
    await writeFile(join(repo, 'README.md'), 'my notes, edited\n')
    await writeFile(join(repo, 'staged.txt'), 'staged, not committed\n')
    await git(repo, ['add', 'README.md', 'staged.txt'])
    const report = await kitsyncJson<GitReport>(home, ['export', '--git', repo], env)
    expect(report.initialised).toBe(false)
    expect(await commits(repo)).toBe(2)
    const inCommit = (await git(repo, ['show', '--name-only', '--format=', 'HEAD'])).trim().split('\n')
    expect(inCommit.some((f) => f === 'README.md' || f === 'staged.txt')).toBe(false)
    expect((await git(repo, ['diff', '--cached', '--name-only'])).trim().split('\n').sort()).toEqual(['README.md', 'staged.txt'])
    expect(await readFile(join(repo, 'README.md'), 'utf8')).toBe('my notes, edited\n')

    // A folder of the user's where a collection would go is refused before anything is written.
    const other = await makeTempDir()
    await git(other, ['init', '--quiet'])
    await mkdir(join(other, 'notes'))
    await writeFile(join(other, 'notes', 'todo.json'), '{}\n')
    expectCliError(await kitsync(home, ['export', '--git', other], env), 'INVALID_ARGUMENT', 2)
    expect((await readdir(other)).sort()).toEqual(['.git', 'notes'])
    expect(await readdir(join(other, 'notes'))).toEqual(['todo.json'])
    // A non-empty folder that is not a repository is refused too.
    const plain = await makeTempDir()
    await writeFile(join(plain, 'x.txt'), 'x')
    expectCliError(await kitsync(home, ['export', '--git', plain], env), 'INVALID_ARGUMENT', 2)
    expect(await readdir(plain)).toEqual(['x.txt'])
  })

  it('fails with GIT_NOT_FOUND, in one line, when git is not on PATH', async () => {
    const home = await filledHome()
    const emptyBin = await makeTempDir()
    const repo = join(await makeTempDir(), 'export')
    const r = await kitsync(home, ['export', '--git', repo], { env: { ...GIT_ENV, PATH: emptyBin } })
    const line = expectCliError(r, 'GIT_NOT_FOUND', 12)
    expect(line).toMatch(/git was not found on PATH/)
    expect(await statOrUndefined(repo)).toBeUndefined()
    const j = expectJsonCliError(await kitsync(home, ['export', '--git', repo, '--json'], { env: { ...GIT_ENV, PATH: emptyBin } }), 'GIT_NOT_FOUND', 12)
    expect(j.message).toMatch(/install git/)
  })
})

describe('kitsync import', () => {
  it('round-trips a git export and a JSON export into fresh workspaces', async () => {
    const home = await filledHome()
    const repo = join(await makeTempDir(), 'export')
    await kitsyncOk(home, ['export', '--git', repo], env)
    const original = await records(home)

    const fromGit = await makeHome()
    await kitsyncOk(fromGit, ['init'])
    const report = await kitsyncJson<ImportReport>(fromGit, ['import', repo])
    expect(report).toMatchObject({ dryRun: false, added: 2 + TRICKY_KEYS.length + 3, changed: 0, unchanged: 0, deleted: 0 })
    expect(report.collections.find((c) => c.collection === 'Drafts')).toMatchObject({ kind: 'templates', created: true })
    expect(await records(fromGit)).toEqual(original)
    expect(await records(fromGit).then((r) => Object.keys(r.notes ?? {}))).toContain(LONG_KEY)
    // The settings came along: the kind and the limit of Drafts.
    expect(await kitsyncJson(fromGit, ['collection', 'show', 'Drafts'])).toMatchObject({ kind: 'templates', limits: { maxRecords: 20 } })
    // Exported again from the copy, the files are the same: a second import is all unchanged.
    expect(await kitsyncJson<ImportReport>(fromGit, ['import', repo])).toMatchObject({ added: 0, changed: 0, unchanged: report.added })

    const file = join(await makeTempDir(), 'backup.json')
    await kitsyncOk(home, ['export', '--out', file])
    const fromJson = await makeHome()
    await kitsyncOk(fromJson, ['init'])
    expect(await kitsyncJson<ImportReport>(fromJson, ['import', file])).toMatchObject({ added: report.added })
    expect(await records(fromJson)).toEqual(original)
  })

  it('with --dry-run reports what would change and changes nothing', async () => {
    const home = await filledHome()
    const repo = join(await makeTempDir(), 'export')
    await kitsyncOk(home, ['export', '--git', repo], env)
    const target = await makeHome()
    await kitsyncOk(target, ['init'])
    await kitsyncOk(target, ['set', 'alerts', 'Alert-7', '{"symbol":"BTCUSD","price":1}'])
    await kitsyncOk(target, ['set', 'notes', 'only-here', '{"mine":true}'])
    const before = await records(target)
    const storeBefore = await kitsyncJson<{ name: string; records: number }[]>(target, ['list'])
    const dry = await kitsyncJson<ImportReport>(target, ['import', repo, '--dry-run'])
    expect(dry).toMatchObject({ dryRun: true, changed: 1, unchanged: 0, deleted: 0, missing: 1 })
    expect(dry.added).toBe(2 + TRICKY_KEYS.length + 3 - 1)
    expect(await kitsyncOk(target, ['import', repo, '--dry-run'])).toMatch(/^would import \(dry run, nothing written\)/)
    expect(await records(target)).toEqual(before)
    expect((await kitsyncJson<{ name: string; records: number }[]>(target, ['list'])).map((c) => [c.name, c.records])).toEqual(
      storeBefore.map((c) => [c.name, c.records]),
    )
    // Without --prune an import never deletes: the record only here stays.
    const real = await kitsyncJson<ImportReport>(target, ['import', repo])
    expect(real).toMatchObject({ changed: 1, deleted: 0, missing: 1 })
    expect((await records(target)).notes?.['only-here']).toEqual({ mine: true })
    // With --prune it goes.
    expect(await kitsyncJson<ImportReport>(target, ['import', repo, '--prune'])).toMatchObject({ deleted: 1, missing: 1, unchanged: real.added + 1 })
    expect((await records(target)).notes?.['only-here']).toBeUndefined()
  })

  it('refuses a record its kind does not allow with the code and exit, writing nothing', async () => {
    const home = await filledHome()
    const repo = join(await makeTempDir(), 'export')
    await kitsyncOk(home, ['export', '--git', repo], env)
    const target = await makeHome()
    await kitsyncOk(target, ['init'])
    await kitsyncOk(target, ['set', 'notes', 'keep', '1'])
    const before = await records(target)

    // An alert without its symbol, among good records: nothing of the import is written.
    await writeFile(join(repo, 'alerts', 'bad.json'), '{"price":5}\n')
    const r = expectJsonCliError(await kitsync(target, ['import', repo, '--json']), 'INVALID_RECORD', 10)
    expect(r.details).toMatchObject({ problemCount: 1, problems: [{ collection: 'alerts', key: 'bad', code: 'INVALID_RECORD' }] })
    expect(await records(target)).toEqual(before)

    // A JSON export with a journal entry that would change one already here: APPEND_ONLY.
    const { key } = await kitsyncJson<{ key: string }>(target, ['append', 'journal', '{"text":"here first"}'])
    const file = join(await makeTempDir(), 'bad.json')
    await writeFile(
      file,
      JSON.stringify({ format: 'kitsync-export', formatVersion: 1, collections: { journal: { [key]: { text: 'changed' } }, notes: { other: 2 } } }),
    )
    const withJournal = await records(target)
    expectCliError(await kitsync(target, ['import', file]), 'APPEND_ONLY', 10)
    expect(await records(target)).toEqual(withJournal)

    // A kind this kitsync does not know, and a file name that is not an encoded key.
    await writeFile(join(repo, 'alerts', 'bad.json'), '{"symbol":"X"}\n')
    const meta = JSON.parse(await readFile(join(repo, 'notes', '_collection.json'), 'utf8')) as Record<string, unknown>
    await writeFile(join(repo, 'notes', '_collection.json'), JSON.stringify({ ...meta, kind: 'spreadsheets' }))
    expectCliError(await kitsync(target, ['import', repo]), 'INVALID_ARGUMENT', 2)
    await writeFile(join(repo, 'notes', '_collection.json'), JSON.stringify(meta))
    await writeFile(join(repo, 'alerts', 'Not Encoded.json'), '{"symbol":"X"}\n')
    expect(expectCliError(await kitsync(target, ['import', repo]), 'INVALID_ARGUMENT', 2)).toMatch(/Not Encoded\.json: not a record file name/)
    expect(await records(target)).toEqual(withJournal)
  })

  it('goes through a running peer (the control API methods exportGit and importRecords)', async () => {
    const home = await filledHome()
    const peer = await startPeer(home)
    try {
      const repo = join(await makeTempDir(), 'export')
      const report = await kitsyncJson<GitReport>(home, ['export', '--git', repo], env)
      expect(report.commit).toMatch(/^[0-9a-f]{40}$/)
      await kitsyncOk(home, ['set', 'alerts', 'alert-7', '{"symbol":"ETHUSD","price":5000}'])
      await writeFile(join(repo, 'alerts', 'alert-9.json'), '{"symbol":"SOLUSD"}\n')
      const dry = await kitsyncJson<ImportReport>(home, ['import', repo, '--dry-run'])
      expect(dry).toMatchObject({ added: 1, changed: 1 })
      expect(await kitsyncJson<ImportReport>(home, ['import', repo])).toMatchObject({ added: 1, changed: 1 })
      expect((await records(home)).alerts?.['alert-7']).toEqual({ symbol: 'ETHUSD', price: 4000 })
    } finally {
      await stopProc(peer.proc)
    }
  })
})
