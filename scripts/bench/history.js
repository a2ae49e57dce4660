// Benchmark section "history": reading a record's versions, and what history costs on disk
// and on writes (issue 21: `history` of a record with 1,000 versions <= 5 ms; report the disk
// of 100 keys x 1,000 overwrites with the default history and with history off).
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { openWorkspace } from '../../dist/index.js'
import { HistorySyncStore } from '../../dist/daemon/history-sync-store.js'
import { HistoryExchange } from '../../dist/sync/history-exchange.js'
import { versionOps } from '../../dist/store/history-rows.js'
import { openLevel } from '../../dist/store/level.js'
import { median, percentile, round, storeSize } from './lib.js'

export const id = 'history'
export const title = 'History: versions of a record'

const SCALE = process.env.BENCH_QUICK === '1' ? 0.1 : 1
const n = (count) => Math.max(1, Math.round(count * SCALE))

const VERSIONS = n(1_000)
const READS = 50
const OVERWRITES = { keys: 100, rounds: n(1_000) }
const COLLECTION = 'bench'
/** History sync: entries of a collection, spread over records, and how many one device lacks. */
const SYNC = { entries: n(10_000), missing: 10 }

async function localWorkspace(home) {
  const ws = await openWorkspace({ home, serve: false })
  if (ws.mode !== 'local') {
    await ws.close()
    throw new Error(`expected a local workspace, got ${ws.mode}`)
  }
  return ws
}

/** Prune what the writes left over the retention now (the workspace does it a second after writes, and hourly). */
const pruneNow = (ws) => ws.historyDesk.pruneNow()

export async function run(ctx) {
  const { measure, tmp, log } = ctx

  // 1. history() of one record with VERSIONS versions, through the library in-process.
  await measure(
    {
      id: 'history.read1000',
      title: `history() of a record with ${VERSIONS} versions (library, in-process)`,
      unit: 'ms',
      target: { op: '<=', value: 5 },
      method: `openWorkspace (local, LevelDB on disk), collection retention ${VERSIONS} versions, ${VERSIONS} whole writes of one record each awaited; then ${READS} calls of history(collection, key), each returning every version; value = median`,
    },
    async () => {
      const home = await tmp.make('history-read')
      const ws = await localWorkspace(home)
      try {
        await ws.configure(COLLECTION, { history: { count: VERSIONS } })
        for (let i = 0; i < VERSIONS; i++) await ws.set(COLLECTION, 'k', { i, text: 'version text', tags: ['a', 'b'] })
        const first = await ws.history(COLLECTION, 'k')
        if (first.length !== VERSIONS) throw new Error(`history listed ${first.length} versions, expected ${VERSIONS}`)
        const times = []
        for (let r = 0; r < READS; r++) {
          const t = performance.now()
          await ws.history(COLLECTION, 'k')
          times.push(performance.now() - t)
        }
        return {
          value: round(median(times), 2),
          details: { p90Ms: round(percentile(times, 90), 2), minMs: round(Math.min(...times), 2), versions: first.length },
        }
      } finally {
        await ws.close()
      }
    },
  )

  // 2. Disk of 100 keys x 1,000 overwrites with the default history (100 versions, 90 days) and with history off.
  const disk = {}
  for (const variant of ['default', 'off']) {
    await measure(
      {
        id: `history.disk.${variant}`,
        title: `store on disk, ${OVERWRITES.keys} keys x ${OVERWRITES.rounds} overwrites, history ${variant}`,
        unit: 'bytes',
        method: `openWorkspace (local), history ${variant === 'default' ? 'default (100 versions, 90 days)' : 'off'}; ${OVERWRITES.keys * OVERWRITES.rounds} whole writes {n, s} each awaited, keys in turn; prune, close (which compacts the collection); value = bytes of store/ and snapshots/ (details: after a full LevelDB compactRange too)`,
      },
      async () => {
        const home = await tmp.make(`history-disk-${variant}`)
        const ws = await localWorkspace(home)
        if (variant === 'off') await ws.configure(COLLECTION, { history: 'off' })
        const t = performance.now()
        for (let r = 0; r < OVERWRITES.rounds; r++) for (let k = 0; k < OVERWRITES.keys; k++) await ws.set(COLLECTION, 'k' + k, { n: r, s: 'x' })
        const writesPerSecond = Math.round((OVERWRITES.keys * OVERWRITES.rounds) / ((performance.now() - t) / 1000))
        await pruneNow(ws)
        const entries = (await ws.history(COLLECTION, undefined, { since: 0, limit: 1_000_000 })).length
        await ws.close()
        const size = await storeSize(home)
        // LevelDB drops deleted (pruned) entries only when it compacts their files: also after a full compaction.
        const db = new ClassicLevel(join(home, 'store'), { keyEncoding: 'utf8', valueEncoding: 'view' })
        await db.open()
        await db.compactRange('\u0000', '\uffff')
        await db.close()
        const compacted = (await storeSize(home)).bytes
        disk[variant] = size.bytes
        log(`    ${variant}: ${writesPerSecond} writes/s, ${entries} history entries kept, ${compacted} bytes after a LevelDB compaction`)
        return { value: size.bytes, details: { writesPerSecond, historyEntries: entries, bytesAfterLevelCompaction: compacted } }
      },
    )
  }
  if (disk.default !== undefined && disk.off !== undefined) log(`    history costs ${round(disk.default / Math.max(1, disk.off), 1)}x the disk of history off`)

  // 3. History sync: two stores differing by 10 entries reconcile (sync/history-exchange.ts).
  const method = (entries, missing) =>
    `two LevelDB stores in one process holding ${entries} history entries of one collection over ${entries / 10} records (B lacking ${missing} chosen at random), each behind a HistorySyncStore and a HistoryExchange joined by an in-memory link that delivers every frame sent in one trip in the next; from A's opening frame until no frame is in flight and the entries are stored`
  for (const [label, entries, missing] of [
    ['', SYNC.entries, SYNC.missing],
    ['100k.', SYNC.entries * 10, SYNC.missing],
    ['equal.', SYNC.entries, 0],
  ]) {
    let result
    const once = async () => (result ??= await reconcileStores(tmp, entries, entries / 10, missing))
    await measure(
      {
        id: `history.sync.${label}bytes`,
        title: `history sync: bytes both ways, ${entries} entries, ${missing} missing`,
        unit: 'bytes',
        method: method(entries, missing),
      },
      async () => {
        const r = await once()
        return { value: r.bytes, details: { frames: r.frames, roundTrips: r.waves / 2, stored: r.stored, ms: r.ms } }
      },
    )
    if (missing === 0) continue
    await measure(
      { id: `history.sync.${label}ms`, title: `history sync: time, ${entries} entries, ${missing} missing`, unit: 'ms', method: method(entries, missing) },
      async () => {
        const r = await once()
        return { value: r.ms, details: { bytes: r.bytes, roundTrips: r.waves / 2 } }
      },
    )
  }
}

/** A's and B's stores, B lacking `missing` of A's entries; reconcile them and count. */
async function reconcileStores(tmp, entries, records, missing) {
  const dbs = [await openLevel(join(await tmp.make('history-sync-a'), 'db')), await openLevel(join(await tmp.make('history-sync-b'), 'db'))]
  try {
    const t0 = 1_800_000_000_000
    const now = () => t0 + 2 * 86_400_000
    const ids = []
    let seed = 7
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
    const lack = new Set()
    while (lack.size < missing) lack.add(Math.floor(rand() * entries))
    for (let i = 0; i < entries; i += 1000) {
      const ops = [[], []]
      for (let j = i; j < Math.min(entries, i + 1000); j++) {
        const ms = t0 + j * 1000
        const stamp = `${ms.toString(36).padStart(9, '0')}.0000.devA`
        const key = `record-${Math.floor(rand() * records)}`
        ids.push(`${key}\0${stamp}`)
        const version = { v: { title: `version ${j}`, done: j % 2 === 0 }, device: 'devA', fields: ['title'], time: ms }
        ops[0].push(...versionOps(COLLECTION, key, stamp, version))
        if (!lack.has(j)) ops[1].push(...versionOps(COLLECTION, key, stamp, version))
      }
      await dbs[0].batch(ops[0])
      await dbs[1].batch(ops[1])
    }
    const retention = { off: false, count: 1_000_000, days: 90 }
    const stores = dbs.map(
      (db, i) => new HistorySyncStore({ store: { db, batch: (o) => db.batch(o) }, retentionOf: () => retention, deviceId: i === 0 ? 'A' : 'B', now }),
    )
    let wave = []
    let bytes = 0
    let frames = 0
    const ends = []
    const peerOf = ['B', 'A']
    const make = (i) =>
      new HistoryExchange(
        { history: stores[i], accepts: () => true, frameOut: () => undefined, stored: () => undefined },
        {
          peerId: peerOf[i],
          bufferedBytes: 0,
          close: () => undefined,
          send: (frame) => {
            bytes += frame.byteLength
            frames++
            wave.push({ to: ends[1 - i], frame })
          },
        },
        { peerId: peerOf[i], isReady: true, isClosed: false, shares: () => true },
        () => 0,
      )
    ends.push(make(0), make(1))
    const t = performance.now()
    await ends[0].begin(COLLECTION)
    await ends[1].begin(COLLECTION)
    let waves = 0
    while (wave.length > 0) {
      waves++
      const now = wave
      wave = []
      for (const { to, frame } of now) await to.receive(frame)
    }
    const ms = round(performance.now() - t, 1)
    const stored = ends[1].counters.stored
    if (stored !== missing) throw new Error(`B stored ${stored} entries, expected ${missing}`)
    const onB = await stores[1].items(COLLECTION, 0)
    if (onB.length !== entries) throw new Error(`B holds ${onB.length} entries after the sync, expected ${entries}`)
    return { bytes, frames, waves, ms, stored }
  } finally {
    for (const db of dbs) await db.close()
  }
}
