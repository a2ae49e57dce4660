/**
 * kill -9 in the middle of a catch-up. Device B was offline while A wrote about 13 MB in 60
 * collections and one large one; B wrote records of its own meanwhile (acknowledged), and keeps
 * writing through its peer while it catches up. B's peer is SIGKILLed once the catch-up is seen
 * under way, then started again. Promised: every write B acknowledged is still there, the
 * catch-up resumes and completes, and B ends with exactly A's records, none missing and none
 * twice. From A itself; from the VPS's blind store with A offline; and a new device killed
 * while `kitsync join` copies the workspace.
 *
 * Real CLI processes, real LevelDB, real libp2p over TCP on loopback. The side that sends the
 * catch-up (A, or the VPS) starts only once B's client listens, and dials B; the kill waits for
 * what shows the catch-up under way: B's own events (merged updates of A's collections) from the
 * VPS, and B's files from a peer, whose catch-up runs in bursts that the events reach the test
 * only after. Each test checks after the kill that B held only part of A's records.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openWorkspace, type JsonValue, type Workspace, type WorkspaceExport } from '../../dist/index.js'
import { cleanup, kitsyncJson, kitsyncOk, makeHome, spawnKitsync, START_TIMEOUT_MS, startPeer, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'

afterAll(cleanup)

const NET = ['--no-mdns', '--listen', '/ip4/127.0.0.1/tcp/0']
/** A's collections written while B is away: enough that B's catch-up takes a measurable time. */
const BULK_COLLECTIONS = 60
const BULK_RECORDS = 200
const TEXT = 'lorem ipsum dolor sit amet, consectetur adipiscing elit '.repeat(18) // about 1 KB
const BIG_RECORDS = 300
const bulkName = (c: number): string => `bulk${String(c).padStart(2, '0')}`
const WAIT_MS = 90_000
/** A peer's start, on a machine busy with the other peers of the test (and other tests). */
const START_MS = 3 * START_TIMEOUT_MS

const peers: RunningPeer[] = []
const clients: Workspace[] = []

afterAll(async () => {
  for (const ws of clients.splice(0)) await ws.close().catch(() => undefined)
  for (const p of peers.splice(0)) await stopProc(p.proc).catch(() => undefined)
})

async function peer(home: string, args: string[] = []): Promise<RunningPeer> {
  const p = await startPeer(home, { args: [...NET, ...args], timeoutMs: START_MS })
  peers.push(p)
  return p
}

async function stop(p: RunningPeer, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const exit = await stopProc(p.proc, signal)
  if (signal === 'SIGTERM') expect(exit, p.proc.transcript()).toEqual({ code: 0, signal: null })
  peers.splice(peers.indexOf(p), 1)
}

/** The VPS: `peer start --headless --relay`, a member with role untrusted that serves the blind store. */
async function vps(home: string, args: string[] = []): Promise<RunningPeer> {
  const proc = spawnKitsync(home, ['peer', 'start', '--headless', '--relay', ...NET, ...args])
  const line = await proc.waitForLine((l) => l.includes('"event":"started"'), START_MS, "the VPS's started line")
  const p = { proc, started: JSON.parse(line) as RunningPeer['started'] }
  expect((p.started as unknown as { role: string }).role).toBe('untrusted')
  peers.push(p)
  return p
}

interface BlindStatus {
  network?: { blindStore?: { role: 'store'; head: number } | { role: 'device'; stores: { peerId: string; live: boolean; cursor: number; pending: boolean }[] } }
}

/** Wait until the device of `home` has uploaded everything to the VPS of `vpsHome` (its cursor is the store's head). */
async function uploaded(home: string, vpsHome: string, vpsId: string): Promise<number> {
  return waitUntil(
    async () => {
      const [d, v] = [await kitsyncJson<BlindStatus>(home, ['status']), await kitsyncJson<BlindStatus>(vpsHome, ['status'])]
      const store = v.network?.blindStore
      const mine = d.network?.blindStore
      if (store?.role !== 'store' || mine?.role !== 'device') return undefined
      const s = mine.stores.find((x) => x.peerId === vpsId)
      return s?.live === true && !s.pending && s.cursor === store.head && store.head > 0 ? store.head : undefined
    },
    WAIT_MS,
    'the device to upload everything to the VPS',
  )
}

async function client(home: string): Promise<Workspace> {
  const ws = await openWorkspace({ home, mode: 'peer' })
  clients.push(ws)
  return ws
}

async function close(ws: Workspace): Promise<void> {
  await ws.close()
  clients.splice(clients.indexOf(ws), 1)
}

/** Open a home's store in this process (no peer runs on it) for `fn`. */
async function offline<T>(home: string, fn: (ws: Workspace) => Promise<T>): Promise<T> {
  const ws = await openWorkspace({ home, mode: 'local', serve: false })
  try {
    return await fn(ws)
  } finally {
    await ws.close()
  }
}

/** Address of a running peer, for another one's --bootstrap. */
const addressOf = (p: RunningPeer): string => (p.started as unknown as { listen: string[] }).listen[0] as string

/** A writes the bulk collections, a journal, and more of a collection B already has. */
async function writeBulk(ws: Workspace): Promise<void> {
  for (let c = 0; c < BULK_COLLECTIONS; c++) {
    await Promise.all(Array.from({ length: BULK_RECORDS }, (_, i) => ws.set(bulkName(c), `r${i}`, { c, i, text: TEXT })))
  }
  // Over 1 MiB: a device that has nothing of it takes it whole, as a snapshot file.
  await Promise.all(Array.from({ length: BIG_RECORDS }, (_, i) => ws.set('big', `r${i}`, { i, text: TEXT.repeat(4) })))
  await Promise.all(Array.from({ length: 500 }, (_, i) => ws.set('shared', `a${i}`, { i, from: 'a', text: TEXT })))
  for (let i = 0; i < 40; i++) await ws.append('journal', { from: 'a', i })
}

/**
 * What B writes while it is away: through the CLI (each acknowledged by its exit) and through
 * the library on its store. Returns every acknowledged record.
 */
async function writeAway(home: string): Promise<Map<string, JsonValue>> {
  const acked = new Map<string, JsonValue>()
  for (let i = 0; i < 3; i++) {
    const value = { from: 'b-cli', i }
    await kitsyncOk(home, ['set', 'mine', `cli${i}`, JSON.stringify(value)])
    acked.set(`mine/cli${i}`, value)
  }
  await kitsyncOk(home, ['append', 'journal', JSON.stringify({ from: 'b', i: 0 })])
  await offline(home, async (ws) => {
    for (let i = 0; i < 300; i++) {
      const value = { from: 'b-away', i, text: TEXT }
      await ws.set('mine', `away${i}`, value)
      acked.set(`mine/away${i}`, value)
    }
    await Promise.all(Array.from({ length: 50 }, (_, i) => ws.set('shared', `b${i}`, { i, from: 'b' })))
    for (let i = 0; i < 50; i++) acked.set(`shared/b${i}`, { i, from: 'b' })
  })
  return acked
}

/**
 * Write `live/k<n>` through B's peer one after another until stopped; each acknowledged write
 * goes into `acked`. The write in flight at the kill may or may not have landed.
 */
function liveWriter(ws: Workspace, acked: Map<string, JsonValue>): { stop: () => Promise<void> } {
  let stopped = false
  const done = (async () => {
    for (let n = 0; !stopped; n++) {
      const value = { from: 'b-live', n }
      try {
        await ws.set('live', `k${n}`, value)
      } catch {
        return // the peer was killed
      }
      acked.set(`live/k${n}`, value)
    }
  })()
  return {
    stop: async () => {
      stopped = true
      await done
    },
  }
}

/**
 * SIGKILL `victim` once its home's store holds `bytes` more than `before`, checked every 2 ms:
 * the catch-up as it shows on B's disk (its events reach a client of B only after B has moved
 * on, so an event count can see the whole catch-up done before the kill).
 */
async function killOnceGrown(home: string, victim: RunningPeer, before: number, bytes: number): Promise<number> {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const grown = (await storeBytes(home)) - before
    if (grown >= bytes) {
      victim.proc.kill('SIGKILL')
      return grown
    }
    if (Date.now() > deadline) throw new Error(`B's store grew by only ${grown} bytes within ${WAIT_MS} ms\n${victim.proc.transcript()}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/** JSON with object keys sorted: stored records come back with their fields in sorted order. */
function canonical(value: JsonValue | undefined): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  )
}

/**
 * Resolve (and SIGKILL B's peer at that very moment) once the catch-up shows on B's disk: the
 * snapshot file of A's large collection appears in snapshots/ (nothing else of the test makes
 * one), and then, if `bytes`, the store has grown by that much more. B's events are no help
 * here: from a peer the catch-up runs in bursts that the events reach the test only after.
 */
async function killOnceStored(home: string, victim: RunningPeer, bytes: number): Promise<string> {
  const fail = (err: Error): never => {
    throw new Error(`${err.message}\n${victim.proc.transcript()}`)
  }
  const file = await waitUntil(
    async () => (await readdir(join(home, 'snapshots')).catch(() => [] as string[])).find((f) => f.startsWith('big.')),
    WAIT_MS,
    "the snapshot file of A's large collection on B",
  ).catch(fail)
  const grown = await killOnceGrown(home, victim, await storeBytes(home), bytes)
  return `${file} there${bytes === 0 ? '' : `, then the store grew by ${grown} bytes`}`
}

/** After the kill, B's store as it is on disk: every acknowledged write is there; A's copy is part-way. */
async function checkAfterKill(home: string, acked: Map<string, JsonValue>): Promise<number> {
  return offline(home, async (ws) => {
    const missing: string[] = []
    const cache = new Map<string, Record<string, JsonValue>>()
    for (const [path, value] of acked) {
      const [collection, key] = path.split('/') as [string, string]
      if (!cache.has(collection)) cache.set(collection, await ws.getAll(collection))
      const stored = cache.get(collection)?.[key]
      if (canonical(stored) !== canonical(value)) missing.push(path)
    }
    expect(missing, 'acknowledged writes of B lost by the kill').toEqual([])
    const names = new Set((await ws.list()).map((c) => c.name))
    let bulk = 0
    for (let c = 0; c < BULK_COLLECTIONS; c++) if (names.has(bulkName(c))) bulk += Object.keys(await ws.getAll(bulkName(c))).length
    return bulk
  })
}

/** The app collections of an export, for comparing two devices. */
async function records(ws: Workspace): Promise<WorkspaceExport['collections']> {
  return (await ws.export()).collections
}

/** Wait until B holds exactly A's records (the catch-up and B's uploads are done). */
async function untilEqual(a: Workspace, b: Workspace, what: string): Promise<WorkspaceExport['collections']> {
  const total = (list: { records: number }[]): number => list.reduce((n, c) => n + c.records, 0)
  let last = { a: 0, b: 0 }
  return waitUntil(
    async () => {
      // The record counts first: cheaper than two exports while the peers still work.
      last = { a: total(await a.list()), b: total(await b.list()) }
      if (last.a !== last.b) return undefined
      const [ra, rb] = [await records(a), await records(b)]
      return JSON.stringify(sorted(ra)) === JSON.stringify(sorted(rb)) ? rb : undefined
    },
    WAIT_MS,
    what,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (records: ${JSON.stringify(last)})`)
  })
}

/** Collections and keys in a fixed order, for comparing exports as text. */
function sorted(r: WorkspaceExport['collections']): [string, [string, JsonValue][]][] {
  return Object.keys(r)
    .sort()
    .map((name) => [name, Object.entries(r[name] ?? {}).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))])
}

/** Everything that must be in the final copy: A's writes and every acknowledged write of B, once. */
function expectComplete(final: WorkspaceExport['collections'], acked: Map<string, JsonValue>): void {
  for (let c = 0; c < BULK_COLLECTIONS; c++) {
    const got = final[bulkName(c)] ?? {}
    expect(Object.keys(got).length, bulkName(c)).toBe(BULK_RECORDS)
    expect(got[`r${BULK_RECORDS - 1}`]).toEqual({ c, i: BULK_RECORDS - 1, text: TEXT })
  }
  const lost = [...acked].filter(([path, value]) => {
    const [collection, key] = path.split('/') as [string, string]
    return canonical(final[collection]?.[key]) !== canonical(value)
  })
  expect(Object.keys(final.big ?? {})).toHaveLength(BIG_RECORDS)
  expect(
    lost.map(([p]) => p),
    'acknowledged writes of B',
  ).toEqual([])
  // Journal entries are keyed by clock: an entry applied twice would show as two records.
  const journal = Object.values(final.journal ?? {}) as { from: string; i: number }[]
  expect(
    journal
      .filter((e) => e.from === 'a')
      .map((e) => e.i)
      .sort((x, y) => x - y),
  ).toEqual(Array.from({ length: 40 }, (_, i) => i))
  expect(journal.filter((e) => e.from === 'b')).toEqual([{ from: 'b', i: 0 }])
  expect(Object.keys(final.shared ?? {})).toHaveLength(1 + 500 + 50)
}

/** Stop tracking B's killed peer and its client, once the peer is gone. */
async function afterKill(b: RunningPeer, ws: Workspace, writer: { stop: () => Promise<void> }): Promise<void> {
  await b.proc.waitForExit(15_000)
  peers.splice(peers.indexOf(b), 1)
  await writer.stop()
  await close(ws).catch(() => undefined) // its peer is gone
}

const TOTAL_BULK = BULK_COLLECTIONS * BULK_RECORDS

/** Bytes in the store files of a home (LevelDB's, the snapshot files, the write-ahead file). */
async function storeBytes(home: string): Promise<number> {
  let total = 0
  for (const dir of [join(home, 'store'), join(home, 'snapshots')]) {
    for (const f of await readdir(dir).catch(() => [] as string[])) total += (await stat(join(dir, f)).catch(() => undefined))?.size ?? 0
  }
  return total + ((await stat(join(home, 'store.wal')).catch(() => undefined))?.size ?? 0)
}

describe('kill -9 during a catch-up', () => {
  // Killed as the catch-up shows on B's disk: early, and half-way.
  it.each([
    { at: 'as the first snapshot file arrives', bytes: 0 },
    { at: 'once its store grew by 8 MB more', bytes: 8_000_000 },
  ])(
    "from another peer (killed $at): B keeps its acknowledged writes, resumes, and ends with exactly A's records",
    { timeout: 240_000 },
    async ({ at, bytes }) => {
      const [homeA, homeB] = [await makeHome(), await makeHome()]
      let a = await peer(homeA)
      await kitsyncJson(homeA, ['set', 'shared', 'seed', '{"from":"a"}'])
      const { token } = await kitsyncJson<{ token: string }>(homeA, ['pair'])
      expect((await kitsyncJson<{ caughtUp: boolean }>(homeB, ['join', token, '--name', 'bee', ...NET])).caughtUp).toBe(true)
      await stop(a)

      // B is away: A writes megabytes, B writes its own records.
      await offline(homeA, writeBulk)
      const acked = await writeAway(homeB)

      // B comes back; A, started after B's client listens, dials it and the catch-up begins.
      let b = await peer(homeB)
      const wsB = await client(homeB)
      const writer = liveWriter(wsB, acked)
      const killed = killOnceStored(homeB, b, bytes)
      a = await peer(homeA, ['--bootstrap', addressOf(b)])
      const seen = await killed
      await afterKill(b, wsB, writer)

      const bulkAtKill = await checkAfterKill(homeB, acked)
      // The premise: the kill came in the middle of the catch-up.
      expect(bulkAtKill, `bulk records on B at the kill (${seen})`).toBeLessThan(TOTAL_BULK)

      // B again: the catch-up resumes and completes.
      b = await peer(homeB, ['--bootstrap', addressOf(a)])
      const wsA = await client(homeA)
      const wsB2 = await client(homeB)
      const final = await untilEqual(wsA, wsB2, 'B and A to hold the same records')
      expectComplete(final, acked)
      console.log(
        `kill during catch-up from A (${at}): ${bulkAtKill} of ${TOTAL_BULK} bulk records on B at the kill, ${acked.size} acknowledged writes of B kept`,
      )
    },
  )

  // Killed as the catch-up shows on B's disk: early, and about half-way (A's bulk, some 12 MB, is in store.wal and LevelDB's log both).
  it.each([
    { at: 'early', bytes: 1_500_000 },
    { at: 'half-way', bytes: 12_000_000 },
  ])('from the VPS blind store, A offline (killed $at): the same', { timeout: 300_000 }, async ({ at, bytes }) => {
    const [homeA, homeB, homeV] = [await makeHome(), await makeHome(), await makeHome()]
    let a = await peer(homeA)
    await kitsyncJson(homeA, ['set', 'shared', 'seed', '{"from":"a"}'])
    const vpsToken = (await kitsyncJson<{ token: string }>(homeA, ['pair', '--untrusted'])).token
    expect((await kitsyncJson<{ caughtUp: boolean }>(homeV, ['join', vpsToken, '--name', 'vps', ...NET])).caughtUp).toBe(true)
    // The VPS dials A (it remembers A's address from the join); A's blind client opens a session.
    let v = await vps(homeV)
    const vpsId = v.started.deviceId
    const { token } = await kitsyncJson<{ token: string }>(homeA, ['pair'])
    expect((await kitsyncJson<{ caughtUp: boolean }>(homeB, ['join', token, '--name', 'bee', ...NET])).caughtUp).toBe(true)

    // B is away: A writes megabytes (uploaded to the VPS), then goes offline too.
    const wsA = await client(homeA)
    await writeBulk(wsA)
    await close(wsA)
    const head = await uploaded(homeA, homeV, vpsId)
    await stop(a)
    const fromA = await offline(homeA, records)
    const acked = await writeAway(homeB)

    // B comes back; the VPS, restarted after B's client listens, dials it and B catches up from the store.
    await stop(v)
    let b = await peer(homeB)
    const wsB = await client(homeB)
    const writer = liveWriter(wsB, acked)
    const killed = killOnceGrown(homeB, b, await storeBytes(homeB), bytes)
    v = await vps(homeV, ['--bootstrap', addressOf(b)])
    const grown = await killed
    await afterKill(b, wsB, writer)

    const bulkAtKill = await checkAfterKill(homeB, acked)
    // The premise: the kill came in the middle of the catch-up.
    expect(bulkAtKill, `bulk records on B at the kill (its store had grown by ${grown} bytes)`).toBeLessThan(TOTAL_BULK)

    // B again, with only the VPS to catch up from: it gets all of A's records.
    b = await peer(homeB, ['--bootstrap', addressOf(v)])
    const wsB2 = await client(homeB)
    const ofA = async (): Promise<WorkspaceExport['collections']> => {
      const mine = await records(wsB2)
      return Object.fromEntries(
        Object.keys(fromA).map((name) => [name, Object.fromEntries(Object.entries(mine[name] ?? {}).filter(([key]) => Object.hasOwn(fromA[name] ?? {}, key)))]),
      )
    }
    await waitUntil(
      async () => (JSON.stringify(sorted(await ofA())) === JSON.stringify(sorted(fromA)) ? true : undefined),
      WAIT_MS,
      "B to hold all of A's records from the VPS",
    )
    // A again: both end with the same records, B's writes included.
    a = await peer(homeA, ['--bootstrap', addressOf(v)])
    const wsA3 = await client(homeA)
    const final = await untilEqual(wsA3, wsB2, 'B and A to hold the same records')
    expectComplete(final, acked)
    console.log(
      `kill during catch-up from the VPS (${at}, store head ${head}): ${bulkAtKill} of ${TOTAL_BULK} bulk records on B at the kill, ${acked.size} acknowledged writes of B kept`,
    )
  })

  it("a new device killed while `join` copies the workspace: peer start completes the copy, and B's writes meanwhile stay", { timeout: 240_000 }, async () => {
    const [homeA, homeB] = [await makeHome(), await makeHome()]
    await offline(homeA, async (ws) => {
      await ws.set('shared', 'seed', { from: 'a' })
      await writeBulk(ws)
    })
    await peer(homeA)
    const wsA = await client(homeA)
    const { token } = await kitsyncJson<{ token: string }>(homeA, ['pair'])
    const join = spawnKitsync(homeB, ['join', token, '--name', 'bee', ...NET])
    // Under way: B's store has taken a few megabytes of the copy (its files on disk).
    const stored = await waitUntil(
      async () => {
        const bytes = (await storeBytes(homeB)) ?? 0
        return bytes > 3_000_000 ? bytes : undefined
      },
      WAIT_MS,
      'B to store 3 MB of the copy',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${join.transcript()}`)
    })
    join.kill('SIGKILL')
    expect((await join.waitForExit(15_000)).signal).toBe('SIGKILL')

    // B, killed half-way, writes on its own, then starts its peer (it remembers A's address from the token).
    const bulkAtKill = await offline(homeB, async (ws) => {
      const names = new Set((await ws.list()).map((c) => c.name))
      let n = 0
      for (let c = 0; c < BULK_COLLECTIONS; c++) if (names.has(bulkName(c))) n += Object.keys(await ws.getAll(bulkName(c))).length
      return n
    })
    expect(bulkAtKill, 'bulk records on B at the kill').toBeLessThan(TOTAL_BULK)
    const acked = await writeAway(homeB)
    await peer(homeB)
    const wsB = await client(homeB)
    const final = await untilEqual(wsA, wsB, 'B and A to hold the same records')
    expectComplete(final, acked)
    console.log(
      `kill during join (B had stored ${stored} bytes): ${bulkAtKill} of ${TOTAL_BULK} bulk records on B at the kill, ${acked.size} acknowledged writes of B kept`,
    )
  })
})
