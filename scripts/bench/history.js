// Benchmark section "history": reading a record's versions, and what history costs on disk
// and on writes (issue 21: `history` of a record with 1,000 versions <= 5 ms; report the disk
// of 100 keys x 1,000 overwrites with the default history and with history off).
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { openWorkspace } from '../../dist/index.js'
import { median, percentile, round, storeSize } from './lib.js'

export const id = 'history'
export const title = 'History: versions of a record'

const SCALE = process.env.BENCH_QUICK === '1' ? 0.1 : 1
const n = (count) => Math.max(1, Math.round(count * SCALE))

const VERSIONS = n(1_000)
const READS = 50
const OVERWRITES = { keys: 100, rounds: n(1_000) }
const COLLECTION = 'bench'

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
}
