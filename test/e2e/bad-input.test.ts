/**
 * Bad input end to end: each case exits with the status of its error code, prints exactly one
 * line `kitsync: CODE: message` on stderr (or one JSON line with --json), nothing on stdout,
 * and writes nothing, checked afterwards with `get` and `list`.
 * The cases that reach the store run both without a peer (the CLI opens the store itself) and
 * through a running peer (the error comes back over the control socket).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
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
  runLimited,
  type CliResult,
  type RunningPeer,
} from '../helpers/cli.js'

const ONE_MIB = 1024 * 1024

interface CollectionInfo {
  name: string
  records: number
  bytes: number
  error?: { code: string; message: string }
}

/** A string record whose JSON `{"<key>":"xxx…"}` is exactly `bytes` long (the size the limit counts). */
function stringRecordOfSize(key: string, bytes: number): string {
  const overhead = JSON.stringify({ [key]: '' }).length
  return JSON.stringify('x'.repeat(bytes - overhead))
}

describe.each([
  { mode: 'without a peer', withPeer: false },
  { mode: 'through a running peer', withPeer: true },
])('bad input $mode', ({ withPeer }) => {
  let home: string
  let peer: RunningPeer | undefined
  let listBefore: CollectionInfo[]

  beforeAll(async () => {
    home = await makeHome()
    await kitsyncOk(home, ['set', 'c', 'k', '{"keep":1}'])
    listBefore = await kitsyncJson<CollectionInfo[]>(home, ['list'])
    expect(listBefore.map((c) => [c.name, c.records])).toEqual([['c', 1]])
    if (withPeer) peer = await startPeer(home)
  })

  afterAll(async () => {
    // After all the cases, the one record is still exactly as written.
    expect(await kitsyncJson(home, ['get', 'c'])).toEqual({ k: { keep: 1 } })
    if (peer !== undefined) {
      const exit = await stopProc(peer.proc)
      peer = undefined
      expect(exit).toEqual({ code: 0, signal: null })
    }
    await cleanup()
  })

  afterEach(() => {
    // Every case must leave the peer (if any) running: bad input never takes it down.
    if (peer !== undefined) expect(peer.proc.exitInfo, peer.proc.transcript()).toBeUndefined()
  })

  /** Commands at once: all through the peer, a few at a time without one (see runLimited). */
  const parallel = <T extends readonly (() => Promise<unknown>)[]>(...tasks: T) => runLimited(withPeer ? tasks.length : 3, tasks)

  /**
   * Nothing was written: no collection appeared, and `c` has as many records and as many stored
   * bytes as before (the store only appends, so any write would show as more bytes).
   */
  async function expectNothingWritten(): Promise<void> {
    expect(await kitsyncJson<CollectionInfo[]>(home, ['list'])).toEqual(listBefore)
  }

  it('invalid JSON: INVALID_JSON, exit 2', async () => {
    const [plain, stdin, fresh] = await parallel(
      () => kitsync(home, ['set', 'c', 'k', '{bad']),
      () => kitsync(home, ['set', 'c', 'k', '-'], { input: '{"half":' }),
      () => kitsync(home, ['set', 'newcoll', 'k', "{'single':1}"]),
    )
    expect(expectCliError(plain, 'INVALID_JSON', 2)).toMatch(/not valid JSON/)
    expectCliError(stdin, 'INVALID_JSON', 2)
    expectCliError(fresh, 'INVALID_JSON', 2)
    expectCliError(await kitsync(home, ['get', 'newcoll']), 'UNKNOWN_COLLECTION', 3)
    await expectNothingWritten()
  })

  // Usage errors are found while parsing the command line, before any store or peer is used:
  // checked once, without a peer.
  if (!withPeer) {
    it('unknown command: UNKNOWN_COMMAND, exit 2', async () => {
      const message = expectCliError(await kitsync(home, ['frobnicate', 'c', 'k']), 'UNKNOWN_COMMAND', 2)
      expect(message).toContain('frobnicate')
      await expectNothingWritten()
    })

    it('unknown flag: INVALID_ARGUMENT, exit 2', async () => {
      const [trailing, leading] = await Promise.all([
        kitsync(home, ['set', 'c', 'k', '{"x":2}', '--bogus']),
        kitsync(home, ['set', '--force', 'c', 'other', '1']),
      ])
      expect(expectCliError(trailing, 'INVALID_ARGUMENT', 2)).toContain('--bogus')
      expect(expectCliError(leading, 'INVALID_ARGUMENT', 2)).toContain('--force')
      await expectNothingWritten()
    })

    it('--json with usage errors: one JSON line too', async () => {
      const [command, flag] = await Promise.all([kitsync(home, ['frobnicate', '--json']), kitsync(home, ['list', '--bogus', '--json'])])
      expectJsonCliError(command, 'UNKNOWN_COMMAND', 2)
      expectJsonCliError(flag, 'INVALID_ARGUMENT', 2)
    })
  }

  it('invalid collection names: INVALID_NAME, exit 2', async () => {
    const names = ['bad/name', '.hidden', 'a'.repeat(65), 'x!y']
    const results = await runLimited(withPeer ? 5 : 3, [
      ...names.map((name) => () => kitsync(home, ['set', name, 'k', '{"x":1}'])),
      () => kitsync(home, ['get', 'bad/name', 'k']),
    ])
    names.forEach((name, i) => expect(expectCliError(results[i] as CliResult, 'INVALID_NAME', 2), name).toContain(JSON.stringify(name)))
    expectCliError(results[names.length] as CliResult, 'INVALID_NAME', 2)
    await expectNothingWritten()
  })

  it('invalid record keys: INVALID_NAME, exit 2', async () => {
    const results = await parallel(
      () => kitsync(home, ['set', 'c', '', '1']),
      () => kitsync(home, ['set', 'c', 'line\nbreak', '1']),
    )
    for (const r of results) expectCliError(r, 'INVALID_NAME', 2)
    await expectNothingWritten()
  })

  it('record over 1 MiB: RECORD_TOO_LARGE, exit 2', async () => {
    // Larger than one argv argument may be, so it goes through stdin.
    const big = JSON.stringify({ blob: 'x'.repeat(ONE_MIB + 10) })
    const [existing, fresh, edge] = await parallel(
      () => kitsync(home, ['set', 'c', 'k', '-'], { input: big }),
      () => kitsync(home, ['set', 'huge', 'k', '-'], { input: big }),
      // One byte over the limit is over.
      () => kitsync(home, ['set', 'c', 'edge', '-'], { input: stringRecordOfSize('edge', ONE_MIB + 1) }),
    )
    expect(expectCliError(existing, 'RECORD_TOO_LARGE', 2)).toContain(`limit of ${ONE_MIB}`)
    expectCliError(fresh, 'RECORD_TOO_LARGE', 2)
    expectCliError(edge, 'RECORD_TOO_LARGE', 2)
    // The refused first write did not create the collection, nor the refused one its record.
    const [getHuge, getEdge] = await parallel(
      () => kitsync(home, ['get', 'huge']),
      () => kitsync(home, ['get', 'c', 'edge']),
    )
    expectCliError(getHuge, 'UNKNOWN_COLLECTION', 3)
    expectCliError(getEdge, 'NOT_FOUND', 3)
    await expectNothingWritten()
  })

  it('unknown collection: UNKNOWN_COLLECTION, exit 3', async () => {
    const [getOne, getAll, del] = await parallel(
      () => kitsync(home, ['get', 'nope', 'k']),
      () => kitsync(home, ['get', 'nope']),
      () => kitsync(home, ['del', 'nope', 'k']),
    )
    expect(expectCliError(getOne, 'UNKNOWN_COLLECTION', 3)).toContain('nope')
    expectCliError(getAll, 'UNKNOWN_COLLECTION', 3)
    expectCliError(del, 'UNKNOWN_COLLECTION', 3)
    // Asking did not create it.
    await expectNothingWritten()
  })

  it('missing key: NOT_FOUND, exit 3', async () => {
    const [get, del] = await parallel(
      () => kitsync(home, ['get', 'c', 'missing']),
      () => kitsync(home, ['del', 'c', 'missing']),
    )
    expect(expectCliError(get, 'NOT_FOUND', 3)).toContain('"missing"')
    expectCliError(del, 'NOT_FOUND', 3)
    await expectNothingWritten()
  })

  it('--json: the error is one JSON line on stderr with error.code', async () => {
    const [notFound, unknown, badJson, badName, tooLarge] = await parallel(
      () => kitsync(home, ['get', 'c', 'missing', '--json']),
      () => kitsync(home, ['get', 'nope', 'k', '--json']),
      () => kitsync(home, ['--json', 'set', 'c', 'k', '{bad']),
      () => kitsync(home, ['set', 'bad/name', 'k', '1', '--json']),
      () => kitsync(home, ['set', 'c', 'big', '-', '--json'], { input: JSON.stringify('x'.repeat(ONE_MIB)) }),
    )
    expect(expectJsonCliError(notFound, 'NOT_FOUND', 3).details).toEqual({ collection: 'c' })
    expect(expectJsonCliError(unknown, 'UNKNOWN_COLLECTION', 3).details).toEqual({ collection: 'nope' })
    expectJsonCliError(badJson, 'INVALID_JSON', 2)
    expectJsonCliError(badName, 'INVALID_NAME', 2)
    expect(expectJsonCliError(tooLarge, 'RECORD_TOO_LARGE', 2).details).toMatchObject({ collection: 'c', limit: ONE_MIB })
    await expectNothingWritten()
  })
})

describe('a smaller record limit from workspace.json (maxRecordBytes)', () => {
  afterEach(cleanup)

  async function homeWithLimit(limit: number): Promise<string> {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    const file = join(home, 'workspace.json')
    const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>
    await writeFile(file, JSON.stringify({ ...config, maxRecordBytes: limit }, null, 2) + '\n')
    expect(await fileMode(file)).toBe(0o600)
    return home
  }

  async function checkLimit(home: string): Promise<void> {
    // Exactly at the limit is allowed, one byte over is not.
    await Promise.all([kitsyncOk(home, ['set', 'c', 'k', stringRecordOfSize('k', 100)]), kitsyncOk(home, ['set', 'c', 'obj', '{"a":"short"}'])])
    const [over, field, fresh] = await Promise.all([
      kitsync(home, ['set', 'c', 'k2', stringRecordOfSize('k2', 101)]),
      // A field write that would take the record over the limit is refused whole.
      kitsync(home, ['set', 'c', 'obj', '--field', 'b', JSON.stringify('y'.repeat(100))]),
      kitsync(home, ['set', 'fresh', 'k', stringRecordOfSize('k', 101)]),
    ])
    expect(expectCliError(over, 'RECORD_TOO_LARGE', 2)).toContain('over the limit of 100')
    expectCliError(field, 'RECORD_TOO_LARGE', 2)
    expectCliError(fresh, 'RECORD_TOO_LARGE', 2)

    const [records, list] = await Promise.all([kitsyncJson(home, ['get', 'c']), kitsyncJson<CollectionInfo[]>(home, ['list'])])
    expect(records).toEqual({ k: JSON.parse(stringRecordOfSize('k', 100)) as unknown, obj: { a: 'short' } })
    expect(list.map((c) => [c.name, c.records])).toEqual([['c', 2]])
  }

  it('applies without a peer', async () => {
    await checkLimit(await homeWithLimit(100))
  })

  it('applies through a running peer', async () => {
    const home = await homeWithLimit(100)
    const { proc } = await startPeer(home)
    await checkLimit(home)
    expect(await stopProc(proc)).toEqual({ code: 0, signal: null })
  })
})

describe.concurrent('an unusable home folder', () => {
  afterAll(cleanup)

  it.each([['set', 'c', 'k', '1'], ['get', 'c', 'k'], ['del', 'c', 'k'], ['list'], ['export'], ['status'], ['init'], ['watch'], ['peer', 'start']])(
    'home is a regular file: kitsync %s … fails with HOME_UNREADABLE, exit 4',
    async (...args) => {
      // Tests run as root, so chmod 000 would not stop reads: a file in place of the folder does.
      const file = join(await makeTempDir(), 'home')
      await writeFile(file, 'not a folder\n')
      expect(expectCliError(await kitsync(file, args), 'HOME_UNREADABLE', 4)).toContain(file)
      expect(await readFile(file, 'utf8')).toBe('not a folder\n')
    },
  )

  it('home is a regular file, with --json: one JSON line, exit 4', async () => {
    const file = join(await makeTempDir(), 'home')
    await writeFile(file, 'not a folder\n')
    const [get, peer] = await Promise.all([kitsync(file, ['get', 'c', 'k', '--json']), kitsync(file, ['peer', 'start', '--json'])])
    expect(expectJsonCliError(get, 'HOME_UNREADABLE', 4).message).toContain(file)
    expect(expectJsonCliError(peer, 'HOME_UNREADABLE', 4).message).toContain(file)
    expect(await readFile(file, 'utf8')).toBe('not a folder\n')
  })

  it('home below a regular file fails with HOME_UNREADABLE, exit 4, and creates nothing', async () => {
    const dir = await makeTempDir()
    await writeFile(join(dir, 'file'), 'x')
    const home = join(dir, 'file', 'home')
    const [set, status] = await Promise.all([kitsync(home, ['set', 'c', 'k', '1']), kitsync(home, ['status'])])
    expectCliError(set, 'HOME_UNREADABLE', 4)
    expectCliError(status, 'HOME_UNREADABLE', 4)
    expect(await readFile(join(dir, 'file'), 'utf8')).toBe('x')
  })
})
