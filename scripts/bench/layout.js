// Benchmark section "layout": 100 keys x 1,000 overwrites on record layout 1 (a Y.Map, the
// collections created before sync 2) and layout 2 (a Y.Array of {k, v} entries, new ones):
// the encoded state a new device receives, and a cold open (fresh process: the document
// applied, the collection built, the first get). Layout 2 also through the store
// (openWorkspace, a closed home folder), as `kitsync-open` in the foundation section.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { openWorkspace } from '../../dist/index.js'
import { Hlc } from '../../dist/core/hlc.js'
import { RecordCollection } from '../../dist/core/record-collection.js'
import { median, round, runProbe, storeSize, summary } from './lib.js'

export const id = 'layout'
export const title = 'Record layouts: 100 keys x 1,000 overwrites'

const KEYS = 100
const ROUNDS = process.env.BENCH_QUICK === '1' ? 100 : 1_000
const OPENS = 7

export async function run({ measure, tmp, log }) {
  const dir = await tmp.make('layout')
  log(`  ${KEYS} keys x ${ROUNDS} whole-record overwrites by one writer, each its own transaction; cold opens: median of ${OPENS} fresh processes`)
  for (const layout of [1, 2]) {
    const doc = new Y.Doc()
    let wall = 1_800_000_000_000
    const c = new RecordCollection('positions', doc, { clock: new Hlc('bench', () => wall), layout })
    for (let r = 0; r < ROUNDS; r++) {
      wall++
      for (let k = 0; k < KEYS; k++) c.set(`p${k}`, { symbol: `S${k}`, quantity: r }, 'bench')
    }
    const state = Y.encodeStateAsUpdate(doc)
    const file = join(dir, `layout${layout}.bin`)
    await writeFile(file, state)
    await measure(
      {
        id: `layout${layout}-state`,
        title: `layout ${layout}: encoded state`,
        unit: 'bytes',
        ...(layout === 2 ? { target: { op: '<=', value: 64 * 1024 } } : {}),
        method: 'Y.encodeStateAsUpdate of the document after the writes',
      },
      () => state.byteLength,
    )
    await measure(
      {
        id: `layout${layout}-open`,
        title: `layout ${layout}: cold open + first get (document only)`,
        unit: 'ms',
        ...(layout === 2 ? { target: { op: '<=', value: 20 } } : {}),
        method: 'fresh process: read the state, apply it to a new Y.Doc, build the RecordCollection, get one record (imports not counted)',
      },
      async () => {
        const runs = []
        for (let i = 0; i < OPENS; i++) runs.push(await runProbe('layout-open', { file, layout, key: 'p7' }))
        if (runs.some((r) => r.value?.quantity !== ROUNDS - 1)) throw new Error('the cold open read a wrong value')
        return {
          value: round(median(runs.map((r) => r.openGetMs)), 2),
          details: {
            runs: summary(
              runs.map((r) => r.openGetMs),
              2,
            ),
          },
        }
      },
    )
  }

  // Layout 2 through the store: a workspace written by this version, closed, opened cold.
  const home = await tmp.make('layout-home')
  const ws = await openWorkspace({ home, serve: false })
  for (let r = 0; r < ROUNDS; r++) for (let k = 0; k < KEYS; k++) await ws.set('positions', `p${k}`, { symbol: `S${k}`, quantity: r })
  await ws.close()
  await measure(
    {
      id: 'layout2-store-open',
      title: 'layout 2: store cold open + first get (openWorkspace)',
      unit: 'ms',
      target: { op: '<=', value: 20 },
      method: 'probe kitsync-open, median',
    },
    async () => {
      const runs = []
      for (let i = 0; i < OPENS; i++) runs.push(await runProbe('kitsync-open', { home, collection: 'positions', key: 'p7' }))
      if (runs.some((r) => r.value?.quantity !== ROUNDS - 1)) throw new Error('the cold open read a wrong value')
      return {
        value: round(median(runs.map((r) => r.openGetMs)), 2),
        details: {
          runs: summary(
            runs.map((r) => r.openGetMs),
            2,
          ),
          // The workspace's open (LevelDB, keys, settings), then the collection's load and the get.
          openMs: round(median(runs.map((r) => r.openMs)), 2),
          getMs: round(median(runs.map((r) => r.getMs)), 2),
        },
      }
    },
  )
  await measure(
    { id: 'layout2-store-disk', title: 'layout 2: store on disk after a clean close', unit: 'bytes', method: 'store/ and snapshots/ of the home' },
    async () => {
      const size = await storeSize(home)
      return { value: size.bytes }
    },
  )
}
