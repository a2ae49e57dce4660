// Per-write cost of the YKeyValue layout in one shard (the linear search for the old entry
// that y-utility's YKeyValue does, against a search by item), today's RecordCollection for
// reference, and reading a record's 1,000-version history from LevelDB.
// Run: npm run build && node scripts/experiments/storage/writes.mjs
import * as Y from 'yjs'
import { Level } from 'level'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { newYkv } from './ykv.mjs'
import { RecordCollection } from '../../../dist/core/record-collection.js'

const record = (i, v = 0) => ({ symbol: 'S' + (i % 5000), quantity: (i + v) % 97, note: 'n' + i })
const key = (i) => 'key-' + i.toString(36)
const WRITES = 10000

for (const size of [244, 3906]) {
  // (b) scan: find the old entry's index by walking the array (y-utility's way)
  {
    const doc = new Y.Doc()
    const kv = newYkv(doc)
    doc.getArray('kv').push(Array.from({ length: size }, (_, i) => ({ key: key(i), val: record(i) })))
    for (let i = 0; i < size; i++) kv.map.set(key(i), doc.getArray('kv').get(i))
    const t0 = performance.now()
    for (let w = 0; w < WRITES; w++) kv.set(key((w * 7919) % size), record(w, 1))
    const ms = performance.now() - t0
    console.log(`(b) shard of ${size}: YKeyValue set with a linear search: ${Math.round(WRITES / (ms / 1000))} writes/s (one transaction each)`)
  }
  // (b) by item: keep key -> Yjs item and delete that item (what a kitsync YKeyValue would do
  // through core/yjs-internals.ts); the delete is Y's own deleteItem via the item's parent
  {
    const doc = new Y.Doc()
    const arr = doc.getArray('kv')
    arr.push(Array.from({ length: size }, (_, i) => ({ key: key(i), val: record(i) })))
    const items = new Map()
    for (let it = arr._start; it !== null; it = it.right) if (!it.deleted) it.content.getContent().forEach((e, j) => items.set(e.key, { it, j }))
    // content of one pushed batch is one item: split per entry as Yjs would on delete; here,
    // locate the index by counting from the item (bounded by the batch), then delete by index
    const t0 = performance.now()
    for (let w = 0; w < WRITES; w++) {
      const k = key((w * 7919) % size)
      doc.transact((tr) => {
        const found = items.get(k)
        if (found && !found.it.deleted && found.it.length === 1) found.it.delete(tr)
        else {
          // first touch of a batched item: find the index once
          let idx = 0
          for (let it = arr._start; it !== null; it = it.right) {
            if (it.deleted) continue
            const c = it.content.getContent()
            const j = c.findIndex((e) => e.key === k)
            if (j >= 0) {
              idx += j
              break
            }
            idx += c.length
          }
          arr.delete(idx, 1)
        }
        arr.push([{ key: k, val: record(w, 1) }])
        items.set(k, { it: arr._start && lastItem(arr), j: 0 })
      })
    }
    const ms = performance.now() - t0
    console.log(`(b) shard of ${size}: YKeyValue set deleting the old entry's item: ${Math.round(WRITES / (ms / 1000))} writes/s (one transaction each)`)
  }
  // (a) today's RecordCollection holding the same records
  {
    const doc = new Y.Doc()
    const c = new RecordCollection('positions', doc)
    doc.transact(() => {
      for (let i = 0; i < size; i++) c.set(key(i), record(i), 'local')
    })
    const t0 = performance.now()
    for (let w = 0; w < WRITES; w++) c.set(key((w * 7919) % size), record(w, 1), 'local')
    const ms = performance.now() - t0
    console.log(`(a) ${size} records: RecordCollection set: ${Math.round(WRITES / (ms / 1000))} writes/s (one transaction each)`)
  }
}
function lastItem(arr) {
  let it = arr._start
  while (it.right !== null) it = it.right
  return it
}

// history: 1,000 versions of one record (and 1,000 other records' 10 versions around it)
{
  const dir = mkdtempSync(join(tmpdir(), 'kitsync-history-'))
  const db = new Level(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  const ops = []
  for (let r = 0; r < 1000; r++)
    for (let v = 0; v < (r === 500 ? 1000 : 10); v++) {
      const t = (1800000000000 + v * 1000).toString(36).padStart(9, '0') + '.0000.yKSUKPH5'
      ops.push({ type: 'put', key: `h!positions!${key(r)}\u0000${t}`, value: JSON.stringify({ v: record(r, v), device: 'yKSUKPH5', fields: ['quantity'] }) })
    }
  await db.batch(ops)
  await db.close()
  const times = []
  for (let i = 0; i < 5; i++) {
    const d2 = new Level(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    await d2.open()
    const t0 = performance.now()
    const out = []
    for await (const [k, v] of d2.iterator({ gte: `h!positions!${key(500)}\u0000`, lt: `h!positions!${key(500)}\u0001` })) out.push([k, JSON.parse(v)])
    times.push(performance.now() - t0)
    if (out.length !== 1000) throw new Error('history read ' + out.length)
    await d2.close()
  }
  times.sort((a, b) => a - b)
  console.log(`history: 1,000 versions of one record read from LevelDB (opened): median ${times[2].toFixed(2)} ms`)
  rmSync(dir, { recursive: true, force: true })
}
