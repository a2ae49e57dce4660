// Child-process probes of the benchmark: `node scripts/bench/probe.js <name> '<json args>'`.
// Each runs in a fresh process (no module, Y.Doc or LevelDB cache of the parent), times its
// work from inside (so node's own start-up is not counted) and prints one JSON line.
const probes = {
  /** openWorkspace on a closed home folder, then the first get of a collection. */
  async 'kitsync-open'({ home, collection, key }) {
    let t = performance.now()
    const { openWorkspace } = await import('../../dist/index.js')
    const importMs = performance.now() - t
    t = performance.now()
    const ws = await openWorkspace({ home, serve: false })
    const openMs = performance.now() - t
    const t2 = performance.now()
    const value = await ws.get(collection, key)
    const getMs = performance.now() - t2
    const openGetMs = performance.now() - t
    const mode = ws.mode
    // Whether the get loaded the collection's document (it is answered from the index rows when not).
    const loaded = typeof ws.loadedDoc === 'function' ? ws.loadedDoc(collection) !== undefined : null
    t = performance.now()
    await ws.close()
    const closeMs = performance.now() - t
    return { importMs, openMs, getMs, openGetMs, closeMs, mode, value, loaded }
  },

  /**
   * Write `updates` sets (`window` in flight) through openWorkspace, then die by SIGKILL
   * without closing, as a crashed process would: whatever the compaction policy left in the
   * log stays there for the next open. With `close`, close the workspace instead (the clean
   * end of the same workload).
   */
  async 'kitsync-write-kill'({ home, collection, updates, keys, window, compaction, close = false }) {
    const { openWorkspace } = await import('../../dist/index.js')
    const ws = await openWorkspace({ home, serve: false, ...(compaction === undefined ? {} : { compaction }) })
    let next = 0
    const started = performance.now()
    const worker = async () => {
      while (next < updates) {
        const i = next++
        await ws.set(collection, 'k' + (i % keys), { n: i, s: 'x' })
      }
    }
    await Promise.all(Array.from({ length: window }, worker))
    const writeMs = performance.now() - started
    const stats = typeof ws.storageStats === 'function' ? await ws.storageStats(collection) : undefined
    if (close) {
      await ws.close()
      return { writeMs, stats, killed: false }
    }
    await new Promise((resolve) => process.stdout.write(JSON.stringify({ writeMs, stats, killed: true }) + '\n', resolve))
    process.kill(process.pid, 'SIGKILL')
    return new Promise(() => undefined)
  },

  /**
   * Write `records` records (keys k0..k{records-1}) through openWorkspace, 10,000 sets in
   * flight (the write queue commits up to 1,000 waiting writes per transaction), then close.
   */
  async 'kitsync-build-many'({ home, collection, records }) {
    const { openWorkspace } = await import('../../dist/index.js')
    const ws = await openWorkspace({ home, serve: false })
    const started = performance.now()
    for (let i = 0; i < records;) {
      const writes = []
      for (let end = Math.min(records, i + 10_000); i < end; i++) writes.push(ws.set(collection, 'k' + i, { symbol: 'S' + (i % 5000), quantity: i, note: 'n' }))
      await Promise.all(writes)
    }
    const writeMs = performance.now() - started
    const t = performance.now()
    await ws.close()
    return { writeMs, closeMs: performance.now() - t, rssBytes: process.memoryUsage().rss }
  },

  /**
   * Awaited sequential writes/s into the collection of each home of `homes` (one workspace
   * each, opened side by side): `warmup` writes each (the first loads the collection), then
   * `trials` rounds of `count` writes, one trial per home per round, so a noisy moment of the
   * machine hits them alike. Keys w0..w{keys-1}, overwritten.
   */
  async 'kitsync-write-rate'({ homes, collection, warmup, count, trials, keys }) {
    const { openWorkspace } = await import('../../dist/index.js')
    const open = []
    for (const home of homes) open.push({ ws: await openWorkspace({ home, serve: false }), next: 0, trialsMs: [] })
    const write = (o) => o.ws.set(collection, 'w' + (o.next % keys), { n: o.next++, s: 'x' })
    for (const o of open) {
      const t = performance.now()
      await write(o)
      o.firstWriteMs = performance.now() - t
      for (let i = 1; i < warmup; i++) await write(o)
    }
    for (let r = 0; r < trials; r++) {
      for (const o of open) {
        const t = performance.now()
        for (let i = 0; i < count; i++) await write(o)
        o.trialsMs.push(performance.now() - t)
      }
    }
    const rssBytes = process.memoryUsage().rss
    for (const o of open) {
      o.stats = typeof o.ws.storageStats === 'function' ? await o.ws.storageStats(collection) : undefined
      await o.ws.close()
    }
    return { homes: open.map(({ firstWriteMs, trialsMs, stats }) => ({ firstWriteMs, trialsMs, stats })), rssBytes }
  },

  /** openWorkspace, one get, then idle: the process's RSS after a GC (run with --expose-gc). */
  async 'kitsync-open-rss'({ home, collection, key }) {
    const { openWorkspace } = await import('../../dist/index.js')
    const ws = await openWorkspace({ home, serve: false })
    const value = await ws.get(collection, key)
    await new Promise((resolve) => setTimeout(resolve, 500))
    globalThis.gc?.()
    await new Promise((resolve) => setTimeout(resolve, 100))
    const { rss, heapUsed } = process.memoryUsage()
    await ws.close()
    return { rssBytes: rss, heapUsedBytes: heapUsed, mode: ws.mode, value }
  },

  /** A document state from a file, applied to a new Y.Doc, read by a RecordCollection of a layout (bench section layout). */
  async 'layout-open'({ file, layout, key }) {
    const { readFile } = await import('node:fs/promises')
    const Y = await import('yjs')
    const { RecordCollection } = await import('../../dist/core/record-collection.js')
    const state = await readFile(file)
    const t = performance.now()
    const doc = new Y.Doc()
    Y.applyUpdate(doc, state)
    const c = new RecordCollection('positions', doc, { layout })
    const value = c.get(key)
    return { openGetMs: performance.now() - t, value }
  },

  /** y-leveldb: LeveldbPersistence + getYDoc (which also trims a log of over 500 updates). */
  async 'yleveldb-load'({ dir, doc }) {
    let t = performance.now()
    const { LeveldbPersistence } = await import('y-leveldb')
    const importMs = performance.now() - t
    t = performance.now()
    const persistence = new LeveldbPersistence(dir)
    const ydoc = await persistence.getYDoc(doc)
    const loadMs = performance.now() - t
    // Slots of either record layout (a Y.Map, or the Y.Array of layout 2).
    const records = ydoc.getMap('records').size + ydoc.getArray('slots').length
    await persistence.destroy()
    return { importMs, loadMs, records }
  },

  /** y-leveldb without its trim: read every update and apply them as getYDoc does. */
  async 'yleveldb-read-apply'({ dir, doc }) {
    let t = performance.now()
    const { LeveldbPersistence, getLevelUpdates } = await import('y-leveldb')
    const Y = await import('yjs')
    const importMs = performance.now() - t
    t = performance.now()
    const persistence = new LeveldbPersistence(dir)
    // _transact hands out the database with y-leveldb's key and value encodings.
    const updates = await persistence._transact((db) => getLevelUpdates(db, doc))
    const readMs = performance.now() - t
    const ydoc = new Y.Doc()
    ydoc.transact(() => {
      for (const update of updates) Y.applyUpdate(ydoc, update)
    })
    const loadMs = performance.now() - t
    // Slots of either record layout (a Y.Map, or the Y.Array of layout 2).
    const records = ydoc.getMap('records').size + ydoc.getArray('slots').length
    await persistence.destroy()
    return { importMs, readMs, applyMs: loadMs - readMs, loadMs, updates: updates.length, records }
  },
}

const [name, json] = process.argv.slice(2)
try {
  const probe = probes[name]
  if (probe === undefined) throw new Error(`unknown probe ${name}`)
  const result = await probe(JSON.parse(json ?? '{}'))
  process.stdout.write(JSON.stringify(result) + '\n')
} catch (err) {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) }) + '\n')
  process.exitCode = 1
}
