/**
 * The peer process end to end: `kitsync peer start` owns the store and serves the control
 * socket; every other command goes through that socket while it runs, and opens the store
 * directly when it does not.
 */
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  cleanup,
  COMMAND_TIMEOUT_MS,
  helpOfEveryCommand,
  expectCliError,
  fileMode,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  makeTempDir,
  spawnKitsync,
  startPeer,
  statOrUndefined,
  stopProc,
  waitForPath,
  type CommandHelp,
  type Proc,
} from '../helpers/cli.js'

interface Change {
  collection: string
  key: string
  op: 'set' | 'del'
  value?: unknown
  source: 'local' | 'remote'
  at: number
}

interface Status {
  initialised: boolean
  info: { home: string; deviceId: string; workspaceId: string; name: string; version: string }
  peer: { running: boolean; pid?: number; startedAt?: number; socket: string }
  collections: { name: string; records: number; bytes: number; error?: { code: string } }[]
}

function parseChange(line: string): Change {
  return JSON.parse(line) as Change
}

/**
 * `watch` prints nothing when it is ready, so keep writing probe records (each from its own
 * `set` process) until the watcher prints one: from then on it is subscribed. Event-driven
 * with a deadline, no fixed sleeps.
 */
async function waitUntilWatching(home: string, watcher: Proc, collection: string): Promise<string[]> {
  const probes: string[] = []
  let seen = false
  const firstLine = watcher
    .waitForLine(() => true, COMMAND_TIMEOUT_MS, 'a change line from watch')
    .finally(() => {
      seen = true
    })
  const writer = (async () => {
    while (!seen) {
      const key = `probe-${probes.length}`
      probes.push(key)
      await kitsyncOk(home, ['set', collection, key, '{"probe":true}'])
    }
  })()
  writer.catch(() => undefined)
  // The writer only finishes on its own once a line was seen; if a probe fails, fail now.
  const line = await Promise.race([firstLine, writer.then(() => firstLine)])
  await writer
  expect(probes).toContain(parseChange(line).key)
  return probes
}

afterEach(cleanup)

describe('kitsync peer start', () => {
  it('prints started JSON, serves every command through its socket, and stops cleanly on SIGTERM', async () => {
    const home = await makeHome()
    const { proc: peer, started } = await startPeer(home)

    // The started line describes this very process and its home.
    expect(started).toMatchObject({ event: 'started', pid: peer.pid, socket: join(home, 'peer.sock'), home, name: 'workspace' })
    expect(started.deviceId).toMatch(/^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/)
    expect(started.workspaceId).toMatch(/^[0-9a-f]{32}$/)
    expect(started.version).toMatch(/^\d+\.\d+\.\d+/)
    expect((await stat(started.socket)).isSocket()).toBe(true)
    expect((await readFile(join(home, 'peer.pid'), 'utf8')).trim()).toBe(String(peer.pid))

    // Secrets and the socket are private to the user.
    expect(await fileMode(join(home, 'peer.sock'))).toBe(0o600)
    expect(await fileMode(join(home, 'identity.key'))).toBe(0o600)
    expect(await fileMode(join(home, 'workspace.json'))).toBe(0o600)

    // The peer holds the store, so these can only succeed through its socket.
    const [setA, setB, setX] = await Promise.all([
      kitsyncJson(home, ['set', 'notes', 'a', '{"text":"hi"}']),
      kitsyncOk(home, ['set', 'notes', 'b', '[1,2,3]']),
      kitsyncOk(home, ['set', 'other', 'x', '-'], { input: '"from stdin"' }),
    ])
    expect([setA, setB, setX]).toEqual([{ collection: 'notes', key: 'a', written: true }, '', ''])
    expect(await kitsyncOk(home, ['set', 'notes', 'a', '--field', 'tags', '["x","y"]'])).toBe('')

    const [a, notes, x] = await Promise.all([
      kitsyncOk(home, ['get', 'notes', 'a']),
      kitsyncJson(home, ['get', 'notes']),
      kitsyncJson(home, ['get', 'other', 'x']),
    ])
    expect(JSON.parse(a)).toEqual({ text: 'hi', tags: ['x', 'y'] })
    expect(notes).toEqual({ a: { text: 'hi', tags: ['x', 'y'] }, b: [1, 2, 3] })
    expect(x).toBe('from stdin')

    expect(await kitsyncJson(home, ['del', 'notes', 'b'])).toEqual({ collection: 'notes', key: 'b', deleted: true })
    const [getDeleted, delAgain] = await Promise.all([kitsync(home, ['get', 'notes', 'b']), kitsync(home, ['del', 'notes', 'b'])])
    expectCliError(getDeleted, 'NOT_FOUND', 3)
    expectCliError(delAgain, 'NOT_FOUND', 3)

    const outFile = join(await makeTempDir(), 'backup.json')
    const [list, listText, exportText, exportOut, status, statusText] = await Promise.all([
      kitsyncJson<Status['collections']>(home, ['list']),
      kitsyncOk(home, ['list']),
      kitsyncOk(home, ['export']),
      kitsyncJson(home, ['export', '--out', outFile]),
      kitsyncJson<Status>(home, ['status']),
      kitsyncOk(home, ['status']),
    ])
    expect(list.map((c) => [c.name, c.records, c.error])).toEqual([
      ['notes', 1, undefined],
      ['other', 1, undefined],
    ])
    expect(list.every((c) => c.bytes > 0)).toBe(true)
    expect(listText).toMatch(/^COLLECTION\s+RECORDS\s+BYTES\s+KIND\s+POLICY\nnotes\s+1\s+\d+\s+generic\s+merge\nother\s+1\s+\d+\s+generic\s+merge\n$/)

    const exported = JSON.parse(exportText) as Record<string, unknown>
    expect(exported).toMatchObject({
      format: 'kitsync-export',
      formatVersion: 1,
      workspace: { id: started.workspaceId, name: 'workspace' },
      collections: { notes: { a: { text: 'hi', tags: ['x', 'y'] } }, other: { x: 'from stdin' } },
      unreadable: [],
    })
    expect(exportOut).toEqual({ out: outFile, collections: 2 })
    expect(JSON.parse(await readFile(outFile, 'utf8'))).toMatchObject({ collections: exported.collections })

    expect(status).toMatchObject({
      initialised: true,
      info: { home, deviceId: started.deviceId, workspaceId: started.workspaceId },
      peer: { running: true, pid: peer.pid, socket: started.socket },
    })
    expect(status.collections.map((c) => c.name)).toEqual(['notes', 'other'])
    expect(statusText).toContain(`running (pid ${peer.pid},`)

    // SIGTERM: clean exit, socket and pid file gone.
    expect(await stopProc(peer, 'SIGTERM')).toEqual({ code: 0, signal: null })
    expect(peer.stderr).toBe('')
    const events = peer.lines.map((l) => JSON.parse(l) as { event: string })
    expect(events[0]).toMatchObject({ event: 'started' })
    expect(events.at(-1)).toEqual({ event: 'stopped', signal: 'SIGTERM' })
    expect(await statOrUndefined(join(home, 'peer.sock'))).toBeUndefined()
    expect(await statOrUndefined(join(home, 'peer.pid'))).toBeUndefined()

    // Everything written through the peer is in the store, read directly now.
    const [notesAfter, xAfter, after] = await Promise.all([
      kitsyncJson(home, ['get', 'notes']),
      kitsyncJson(home, ['get', 'other', 'x']),
      kitsyncJson<Status>(home, ['status']),
    ])
    expect(notesAfter).toEqual({ a: { text: 'hi', tags: ['x', 'y'] } })
    expect(xAfter).toBe('from stdin')
    expect(after.peer.running).toBe(false)
    expect(after.info.deviceId).toBe(started.deviceId)
    // Opening the store directly did not leave a socket behind either.
    expect(await statOrUndefined(join(home, 'peer.sock'))).toBeUndefined()
  })

  it('refuses a second peer on the same home with PEER_ALREADY_RUNNING, leaving the first one serving', async () => {
    const home = await makeHome()
    const { proc: peer } = await startPeer(home)
    await kitsyncOk(home, ['set', 'c', 'k', '1'])

    const second = await kitsync(home, ['peer', 'start'])
    const message = expectCliError(second, 'PEER_ALREADY_RUNNING', 4)
    expect(message).toContain(`pid ${peer.pid}`)
    const secondJson = await kitsync(home, ['peer', 'start', '--json'])
    expect(secondJson.code).toBe(4)
    expect(secondJson.stdout).toBe('')
    expect((JSON.parse(secondJson.stderr) as { error: { code: string } }).error.code).toBe('PEER_ALREADY_RUNNING')

    // The failed start did not take the socket away from the running peer.
    expect(peer.exitInfo).toBeUndefined()
    expect(await fileMode(join(home, 'peer.sock'))).toBe(0o600)
    expect(await kitsyncJson(home, ['get', 'c', 'k'])).toBe(1)
    expect((await kitsyncJson<Status>(home, ['status'])).peer.pid).toBe(peer.pid)

    expect(await stopProc(peer)).toEqual({ code: 0, signal: null })
  })

  it('starts over the stale socket and pid file of a peer killed with SIGKILL', async () => {
    const home = await makeHome()
    const first = await startPeer(home)
    await kitsyncOk(home, ['set', 'c', 'k', '"before kill"'])
    expect(await stopProc(first.proc, 'SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' })
    // A killed peer cannot clean up: the socket file is left, but nothing answers on it.
    expect(await statOrUndefined(join(home, 'peer.sock'))).toBeDefined()

    // Commands fall back to the store directly.
    expect(await kitsyncJson(home, ['get', 'c', 'k'])).toBe('before kill')
    expect((await kitsyncJson<Status>(home, ['status'])).peer.running).toBe(false)

    const second = await startPeer(home)
    expect(second.started.pid).not.toBe(first.started.pid)
    expect((await readFile(join(home, 'peer.pid'), 'utf8')).trim()).toBe(String(second.proc.pid))
    await kitsyncOk(home, ['set', 'c', 'k2', '"after restart"'])
    expect(await kitsyncJson(home, ['get', 'c'])).toEqual({ k: 'before kill', k2: 'after restart' })
    expect((await kitsyncJson<Status>(home, ['status'])).peer.pid).toBe(second.proc.pid)
    expect(await stopProc(second.proc)).toEqual({ code: 0, signal: null })
  })
})

describe('kitsync watch', () => {
  it('prints a JSON line for a change made by another process through the running peer', async () => {
    const home = await makeHome()
    const { proc: peer } = await startPeer(home)
    const watcher = spawnKitsync(home, ['watch', 'notes'])
    const probes = await waitUntilWatching(home, watcher, 'notes')

    const before = Date.now()
    await kitsyncOk(home, ['set', 'other', 'x', '{"not":"watched"}'])
    await kitsyncOk(home, ['set', 'notes', 'k', '{"v":1}'])
    const line = await watcher.waitForLine((l) => parseChange(l).key === 'k', COMMAND_TIMEOUT_MS, 'the change of notes/k')
    const change = parseChange(line)
    expect(change).toEqual({ collection: 'notes', key: 'k', op: 'set', value: { v: 1 }, source: 'local', at: expect.any(Number) })
    expect(change.at).toBeGreaterThanOrEqual(before - 1000)

    await kitsyncOk(home, ['del', 'notes', 'k'])
    const del = parseChange(await watcher.waitForLine((l) => parseChange(l).op === 'del', COMMAND_TIMEOUT_MS, 'the delete of notes/k'))
    expect(del).toEqual({ collection: 'notes', key: 'k', op: 'del', source: 'local', at: expect.any(Number) })

    // Every line is one JSON change of the watched collection only: `other` was written
    // before notes/k and changes are delivered in order, so it would have shown by now.
    const changes = watcher.lines.map(parseChange)
    expect(changes.every((c) => c.collection === 'notes')).toBe(true)
    expect(changes.filter((c) => !probes.includes(c.key)).map((c) => [c.key, c.op])).toEqual([
      ['k', 'set'],
      ['k', 'del'],
    ])

    expect(await stopProc(watcher, 'SIGTERM')).toEqual({ code: 0, signal: null })
    expect(watcher.stderr).toBe('')
    // Stopping the watcher does not disturb the peer.
    expect(peer.exitInfo).toBeUndefined()
    expect(await kitsyncJson(home, ['get', 'other', 'x'])).toEqual({ not: 'watched' })
    expect(await stopProc(peer)).toEqual({ code: 0, signal: null })
  })

  it('without a peer, serves the control socket itself: a concurrent set goes through it and shows up', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    const watcher = spawnKitsync(home, ['watch'])
    // The watcher listens on peer.sock and subscribes to changes right after making it 0600
    // (no I/O in between), so once the socket is 0600 a write cannot be missed.
    await waitForPath(join(home, 'peer.sock'), COMMAND_TIMEOUT_MS, (st) => st.isSocket() && (st.mode & 0o777) === 0o600)

    // The watcher holds the store; this set can only succeed through its socket.
    await kitsyncOk(home, ['set', 'notes', 'k', '{"v":2}'])
    const change = parseChange(await watcher.waitForLine(() => true, COMMAND_TIMEOUT_MS, 'the change of notes/k'))
    expect(change).toEqual({ collection: 'notes', key: 'k', op: 'set', value: { v: 2 }, source: 'local', at: expect.any(Number) })
    expect(await kitsyncJson(home, ['get', 'notes', 'k'])).toEqual({ v: 2 })
    await kitsyncOk(home, ['set', 'more', 'm', 'true'])
    expect(parseChange(await watcher.waitForLine((l) => parseChange(l).collection === 'more', COMMAND_TIMEOUT_MS, 'the change of more/m'))).toMatchObject({
      collection: 'more',
      key: 'm',
      op: 'set',
      value: true,
    })
    expect(watcher.lines).toHaveLength(2)

    expect(await stopProc(watcher, 'SIGTERM')).toEqual({ code: 0, signal: null })
    expect(watcher.stderr).toBe('')
    expect(await statOrUndefined(join(home, 'peer.sock'))).toBeUndefined()
    // What went through the watcher is durable in the store.
    expect(await kitsyncJson(home, ['get', 'notes', 'k'])).toEqual({ v: 2 })
    expect(await kitsyncJson(home, ['get', 'more', 'm'])).toBe(true)
  })
})

// Every command as listed by `kitsync --help` (and each group's help), so new commands are
// covered as they come. Collected once, a few at a time; the cases only look at the results.
const helps = await helpOfEveryCommand()

describe('--help', () => {
  const cases = helps.map((h) => [h.args.join(' ') || '(no command)', h] as const)

  const checkHelp = ({ args, result: r }: CommandHelp): void => {
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain(`Usage: kitsync${args.length > 0 ? ' ' + args.join(' ') : ''} `)
    expect(r.stdout).toContain('Example')
    expect(r.stdout).toMatch(/\n {2}\$ kitsync /)
  }

  it('covers the documented commands', () => {
    expect(helps.map((h) => h.args)).toEqual(
      expect.arrayContaining([[], ['init'], ['set'], ['get'], ['del'], ['list'], ['watch'], ['export'], ['status'], ['peer'], ['peer', 'start']]),
    )
  })

  it.each(cases)('kitsync %s --help exits 0 and shows an example', (_name, help) => {
    checkHelp(help)
  })
})
