// Commands of the "storage" benchmark section for a mesh-peer.js child (see mesh-peer.js:
// `fork(mesh-peer.js, [this file])`). The child runs a kitsync Peer started by 'kitsync-start'.
export function commands({ node, now }) {
  const peer = () => {
    const n = node()
    if (n?.kind !== 'kitsync') throw new Error('no kitsync peer runs in this process')
    return n.peer
  }
  return {
    /**
     * Give the peer a collection of `records` records (keys k0..k{records-1}) as a new device
     * takes a peer's copy: written into a document of their own, then adopted whole (as the
     * kitsync-build-many probe does in adopt mode).
     */
    async adoptMany({ collection, records }) {
      const Y = await import('yjs')
      const { RecordCollection } = await import('../../dist/core/record-collection.js')
      const t0 = now()
      const doc = new Y.Doc()
      const source = new RecordCollection(collection, doc)
      for (let i = 0; i < records;) {
        const end = Math.min(records, i + 10_000)
        doc.transact(() => {
          for (; i < end; i++) source.set('k' + i, { symbol: 'S' + (i % 5000), quantity: i, note: 'n' }, 'bench')
        })
      }
      const update = Y.encodeStateAsUpdate(doc)
      doc.destroy()
      const t1 = now()
      await peer().workspace.adopt(collection, update)
      await peer().workspace.flush()
      return { buildMs: t1 - t0, adoptMs: now() - t1, updateBytes: update.byteLength }
    },

    /** When this peer's sync engine last reported 'caught-up' with `peerId` (hrtime ms), if it did. */
    async caughtUpAt({ peerId }) {
      return { t: node().events.caughtUp.findLast((c) => c.peerId === peerId)?.t }
    },

    /** Write `values` ({ key: value }), each awaited (durable) before the next. */
    async write({ collection, values }) {
      for (const [key, value] of Object.entries(values)) await peer().workspace.set(collection, key, value)
      return {}
    },

    /** The values of `keys` in `collection`; none while this peer does not hold the collection yet. */
    async values({ collection, keys }) {
      const out = {}
      try {
        for (const key of keys) out[key] = await peer().workspace.get(collection, key)
      } catch (err) {
        if (err?.code !== 'UNKNOWN_COLLECTION') throw err
      }
      return out
    },

    /** Bytes of sync frames in and out of the session with `peerId` (the session's counters, as `kitsync peers` shows them). */
    async sessionBytes({ peerId }) {
      const device = (await peer().devices()).find((d) => d.peerId === peerId)
      if (device?.state !== 'connected') throw new Error(`${peerId} is not connected (${device?.state ?? 'not a member'})`)
      return { bytesIn: device.bytesIn, bytesOut: device.bytesOut }
    },

    /** Whether the collection's document is loaded in this process. */
    async loaded({ collection }) {
      return { loaded: peer().workspace.loadedDoc(collection) !== undefined }
    },

    /** Where this process's memory is (diagnostics): the idle-document tracker's state, V8's heap and the process's RSS. */
    async memState({ collection }) {
      const v8 = await import('node:v8')
      const idle = peer().workspace.registry?.idle
      const usage = process.memoryUsage()
      const mb = (n) => Math.round(n / 2 ** 10) / 1024
      return {
        loaded: peer().workspace.loadedDoc(collection) !== undefined,
        unloads: idle?.unloads,
        idleForMs: idle === undefined ? undefined : Object.fromEntries([...idle.lastUse].map(([k, t]) => [k, Date.now() - t])),
        rssMB: mb(usage.rss),
        heapUsedMB: mb(usage.heapUsed),
        heapTotalMB: mb(usage.heapTotal),
        externalMB: mb(usage.external),
        arrayBuffersMB: mb(usage.arrayBuffers),
        spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, mb(s.space_used_size)])),
        maps: await residentByMapping(),
      }
    },

    /** Write a heap snapshot to `path` (diagnostics). */
    async heapSnapshot({ path }) {
      const v8 = await import('node:v8')
      return { path: v8.writeHeapSnapshot(path) }
    },
  }
}

/** Resident MB of this process per kind of mapping (/proc/self/smaps): the node binary, malloc's main heap, anonymous (V8's heap, thread arenas, large allocations). */
async function residentByMapping() {
  const { readFile } = await import('node:fs/promises')
  const out = {}
  let name = ''
  for (const line of (await readFile('/proc/self/smaps', 'utf8')).split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) name = head[1] === '' ? '[anon]' : head[1].startsWith('/') ? (head[1].endsWith('/node') ? 'node' : 'files') : head[1]
    else if (line.startsWith('Rss:')) out[name] = (out[name] ?? 0) + Number(line.split(/\s+/)[1]) / 1024
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Math.round(v * 10) / 10]))
}
