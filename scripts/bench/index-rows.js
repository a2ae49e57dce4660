// Benchmark section "index": reads answered from the LevelDB index rows (r!NAME!KEY) without
// loading the collection's document (docs/design/storage.md §3.3). A collection of 1,000,000
// records and one of 1,000, each written through the workspace's write path (group commits of
// up to 1,000 writes, rows in the batch of each update) in a child process that then closes
// the workspace; then fresh processes open the workspace and get one record: the library
// (openWorkspace, mode local) and the CLI (`kitsync get`). Issue 21's target: 1,000,000 records,
// cold open + first get in a fresh process ≤ 50 ms and ≤ 3× the figure for 1,000 records.
import { BIN, median, round, runProbe, storeSize, summary, timeNode } from './lib.js'

export const id = 'index'
export const title = 'Index rows: reads of a 1,000,000-record collection without loading it'

const SCALE = process.env.BENCH_QUICK === '1' ? 0.1 : 1
const LARGE = Math.max(1000, Math.round(1_000_000 * SCALE))
const SMALL = 1000
const RUNS = 5
const COLLECTION = 'bench'
const BUILD_TIMEOUT_MS = 240_000

export async function run(ctx) {
  const { measure, note, tmp, log } = ctx
  const homes = {}
  for (const records of [SMALL, LARGE]) {
    const home = await tmp.make(`index-${records}`)
    const started = performance.now()
    const built = await runProbe('kitsync-build-many', { home, collection: COLLECTION, records }, { timeoutMs: BUILD_TIMEOUT_MS })
    log(
      `  built ${records.toLocaleString('en-US')} records in ${Math.round(performance.now() - started)} ms (writes ${Math.round(built.writeMs)} ms, close ${Math.round(built.closeMs)} ms)`,
    )
    homes[records] = { home, built, storeBytes: (await storeSize(home)).bytes }
  }

  /** Fresh processes: the first open after the writer closed, then RUNS more. */
  const libraryOpens = async (records) => {
    const { home } = homes[records]
    const key = 'k' + Math.floor(records / 2)
    const runs = []
    for (let i = 0; i <= RUNS; i++) {
      const r = await runProbe('kitsync-open', { home, collection: COLLECTION, key })
      if (r.value?.quantity !== Math.floor(records / 2)) throw new Error(`get returned ${JSON.stringify(r.value)}`)
      if (r.loaded !== false) throw new Error(`the get loaded the collection's document (loaded: ${r.loaded})`)
      runs.push(r)
    }
    return runs
  }
  const lib = {}
  for (const records of [SMALL, LARGE]) {
    lib[records] = await measure(
      {
        id: `index.openGet.${records}`,
        title: `library: openWorkspace (local) + first get, ${records.toLocaleString('en-US')} records (fresh process, median of ${RUNS})`,
        unit: 'ms',
        ...(records === LARGE ? { target: { op: '<=', value: 50 } } : {}),
        method:
          'A fresh node child process times openWorkspace({ home, mode: local }) + ws.get of one record (module import and node start-up not included); ' +
          `median of ${RUNS} opens after the first one (reported in details). The document is never loaded (checked).`,
      },
      async () => {
        const runs = await libraryOpens(records)
        const later = runs.slice(1)
        return {
          value: round(median(later.map((r) => r.openGetMs))),
          details: {
            firstOpenAfterWriterMs: round(runs[0].openGetMs),
            openMs: summary(later.map((r) => r.openMs)),
            getMs: summary(later.map((r) => r.getMs)),
            importMs: summary(later.map((r) => r.importMs)),
            build: {
              writeMs: round(homes[records].built.writeMs),
              closeMs: round(homes[records].built.closeMs),
              writerRssBytes: homes[records].built.rssBytes,
            },
            storeBytes: homes[records].storeBytes,
          },
        }
      },
    )
  }
  await measure(
    {
      id: 'index.openGet.ratio',
      title: `library open + first get: ${LARGE.toLocaleString('en-US')} records against ${SMALL.toLocaleString('en-US')}`,
      unit: '×',
      target: { op: '<=', value: 3 },
      method: 'The two medians above, divided.',
    },
    async () => {
      const a = lib[LARGE].value
      const b = lib[SMALL].value
      if (typeof a !== 'number' || typeof b !== 'number') throw new Error('a figure it divides is missing')
      return round(a / b, 2)
    },
  )

  const cli = {}
  for (const records of [SMALL, LARGE]) {
    cli[records] = await measure(
      {
        id: `index.cliGet.${records}`,
        title: `CLI: kitsync get of one record, ${records.toLocaleString('en-US')} records (whole process, median of ${RUNS})`,
        unit: 'ms',
        method: 'Wall time of `node bin/kitsync.js --home HOME --json get bench KEY`, node start-up included, no peer running.',
      },
      async () => {
        const key = 'k' + Math.floor(records / 3)
        const times = timeNode([BIN, '--home', homes[records].home, '--json', 'get', COLLECTION, key], {
          runs: RUNS,
          check: (out) => {
            if (JSON.parse(out).quantity !== Math.floor(records / 3)) throw new Error(`kitsync get printed ${out.slice(0, 200)}`)
          },
        })
        return { value: round(median(times)), details: { runsMs: times.map((t) => round(t)) } }
      },
    )
  }
  await measure(
    {
      id: 'index.cliGet.ratio',
      title: `CLI get: ${LARGE.toLocaleString('en-US')} records against ${SMALL.toLocaleString('en-US')}`,
      unit: '×',
      target: { op: '<=', value: 3 },
      method: 'The two medians above, divided.',
    },
    async () => {
      const a = cli[LARGE].value
      const b = cli[SMALL].value
      if (typeof a !== 'number' || typeof b !== 'number') throw new Error('a figure it divides is missing')
      return round(a / b, 2)
    },
  )

  for (const records of [SMALL, LARGE]) {
    await measure(
      {
        id: `index.idleRss.${records}`,
        title: `RSS of a process that opened the workspace and did one get, idle, ${records.toLocaleString('en-US')} records`,
        unit: 'MB',
        method: 'A fresh node child process (--expose-gc): openWorkspace (local), one get, 0.5 s idle, a GC, then process.memoryUsage().rss.',
      },
      async () => {
        const r = await runProbe('kitsync-open-rss', { home: homes[records].home, collection: COLLECTION, key: 'k1' }, { nodeArgs: ['--expose-gc'] })
        return { value: round(r.rssBytes / 1e6, 1), details: { heapUsedMB: round(r.heapUsedBytes / 1e6, 1) } }
      },
    )
  }
  note(
    `index: ${LARGE.toLocaleString('en-US')} records take ${Math.round(homes[LARGE].storeBytes / 1e6)} MB on disk (LevelDB with the index rows, and the snapshot file)`,
  )
}
