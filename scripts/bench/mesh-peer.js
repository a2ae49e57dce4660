// One benchmark node in its own process, driven by the "mesh" section over IPC
// (child_process.fork): either a kitsync Peer (LevelDB home, libp2p on loopback, no mDNS) or a
// y-websocket client holding the same records layout (RecordCollection on a Y.Doc).
//
// Parent -> child: { id, cmd, args }. Child -> parent: { id, result } or { id, error }, and
// unsolicited { event, ... } messages from watchers. Times are CLOCK_MONOTONIC milliseconds
// (process.hrtime), which all processes of the machine share, so a time taken here compares
// with one taken in another process.
import { pathToFileURL } from 'node:url'
import '../../dist/polyfill.js'
import { jsonRecord } from './mesh-data.js'

const now = () => Number(process.hrtime.bigint()) / 1e6

/** What every workload needs from a node, whichever system it runs. */
let node
let listening = false
/** Remote-change watchers: (keys: string[]) => void, called for each remote change batch. */
const watchers = new Set()
const remoteKeys = (keys) => {
  for (const w of [...watchers]) w(keys)
}

async function startKitsync({ home, listen, bootstrap, relay = false, snapshotPolicy, control = false }) {
  const t0 = now()
  // The V8 settings `kitsync peer start` runs a peer with (bin/kitsync.js: the young generation
  // kept small, see src/cli/young-generation.ts; a collection after a large idle document is
  // dropped, gc-release.ts), set before the peer's modules load, as there.
  const { applyYoungGeneration } = await import('../../dist/cli/young-generation.js')
  applyYoungGeneration()
  ;(await import('../../dist/cli/gc-release.js')).enableMemoryRelease()
  const { Peer } = await import('../../dist/daemon/peer.js')
  const importMs = now() - t0
  const t1 = now()
  const peer = await Peer.start({ home, listen, bootstrap, mdns: false, control, relay, ...(snapshotPolicy === undefined ? {} : { snapshotPolicy }) })
  const startMs = now() - t1
  const events = { connected: [], caughtUp: [] }
  peer.engine.on('connected', (e) => events.connected.push({ peerId: e.peerId, t: now() }))
  peer.engine.on('caught-up', (e) => events.caughtUp.push({ peerId: e.peerId, t: now() }))
  node = {
    kind: 'kitsync',
    peer,
    events,
    // Subscribed on the first watch only, as an app that wants change events would.
    listen() {
      // 'change' is emitted once per record of each transaction, synchronously in the observer.
      peer.workspace.on('change', (e) => {
        if (e.source === 'remote') remoteKeys([e.key])
      })
    },
    set: (collection, key, value) => peer.workspace.set(collection, key, value),
    getAll: (collection) => peer.workspace.getAll(collection),
    async stop() {
      await peer.stop()
    },
  }
  return { peerId: peer.deviceId, listen: peer.shareableAddresses().map((a) => `${a}/p2p/${peer.deviceId}`), importMs, startMs }
}

/**
 * A y-websocket client with one provider (room) per collection, each a Y.Doc holding a
 * RecordCollection. Connects to every room of `rooms` and waits for the server's state (sync
 * step 2). With `read`, then reads every record of the first room (as a kitsync joiner does);
 * with `waitForRecords`, first waits until that room holds that many records.
 */
async function startWebsocket({ url, rooms, read = false, waitForRecords }) {
  const t0 = now()
  const [{ WebsocketProvider }, Y, { default: WebSocket }, { RecordCollection }] = await Promise.all([
    import('y-websocket'),
    import('yjs'),
    import('ws'),
    import('../../dist/core/record-collection.js'),
  ])
  const importMs = now() - t0
  const LOCAL = Symbol('local')
  const t1 = now()
  const open = new Map()
  const observe = (collection) =>
    collection.onChange((changes) => {
      if (changes[0]?.origin !== LOCAL) remoteKeys(changes.map((c) => c.key))
    })
  for (const room of rooms) {
    const doc = new Y.Doc()
    const collection = new RecordCollection(room, doc)
    // disableBc: no BroadcastChannel shortcut between clients; every update goes through the server.
    const provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, disableBc: true })
    open.set(room, { doc, collection, provider })
  }
  const room = (name) => {
    const r = open.get(name)
    if (r === undefined) throw new Error(`room ${name} is not open on this client`)
    return r
  }
  node = {
    kind: 'y-websocket',
    // Subscribed on the first watch only: a plain client reads the document without observers.
    listen() {
      for (const { collection } of open.values()) observe(collection)
    },
    async set(name, key, value) {
      room(name).collection.set(key, value, LOCAL)
    },
    async getAll(name) {
      return room(name).collection.entries()
    },
    drained(name) {
      return drained(room(name).provider)
    },
    async stop() {
      for (const { provider, doc } of open.values()) {
        provider.destroy()
        doc.destroy()
      }
    },
  }
  await Promise.all([...open.values()].map(({ provider }) => until((done) => provider.once('sync', done), `no sync with ${url} within 30 s`)))
  const syncedAt = now()
  const first = open.get(rooms[0])
  const out = { importMs, t0: t1, connectMs: syncedAt - t1, recordsAtSync: first.collection.size }
  if (waitForRecords !== undefined && first.collection.size < waitForRecords) {
    await until((done) => {
      const off = first.collection.onChange(() => {
        if (first.collection.size >= waitForRecords) {
          off()
          done()
        }
      })
    }, `room ${rooms[0]} did not reach ${waitForRecords} records within 30 s`)
    out.completeMs = now() - t1
  }
  if (read) {
    const records = first.collection.entries()
    const t2 = now()
    out.t1 = t2
    out.readMs = t2 - syncedAt
    out.totalMs = t2 - t1
    out.records = Object.keys(records).length
    out.jsonBytes = Buffer.byteLength(JSON.stringify(records))
  }
  return out
}

/** Resolves when `arm(done)` calls done; rejects with `message` after 30 s. */
function until(arm, message) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), 30_000)
    arm(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}

const commands = {
  'kitsync-start': startKitsync,
  'ws-start': startWebsocket,

  async invite({ untrusted = false } = {}) {
    const invite = await node.peer.createInvite(undefined, { untrusted })
    return { token: invite.token, addresses: invite.addresses }
  },

  /** Join with a token, then read the whole collection: the time a new device needs to have the data. */
  async join({ token, name, collection, expectRecords }) {
    const t0 = now()
    const result = await node.peer.join(token, name)
    const joinedAt = now()
    const records = collection === undefined ? {} : await node.getAll(collection)
    const t1 = now()
    const count = Object.keys(records).length
    if (expectRecords !== undefined && count !== expectRecords) throw new Error(`joined with ${count} records in ${collection}, expected ${expectRecords}`)
    return {
      t0,
      t1,
      joinMs: joinedAt - t0,
      readMs: t1 - joinedAt,
      totalMs: t1 - t0,
      caughtUp: result.caughtUp,
      records: count,
      jsonBytes: collection === undefined ? 0 : Buffer.byteLength(JSON.stringify(records)),
      helloAt: node.events.connected.map((e) => e.t - t0),
      caughtUpAt: node.events.caughtUp.map((e) => e.t - t0),
    }
  },

  /** The blind store as this peer sees it (vps section), and its records in one collection. */
  async blind({ collection, count = false } = {}) {
    // count: the collection's record count only (cheap: no read of every record).
    const records =
      collection === undefined
        ? 0
        : count
          ? ((await node.peer.workspace.list()).find((c) => c.name === collection)?.records ?? 0)
          : await node.getAll(collection).then(
              (r) => Object.keys(r).length,
              () => 0,
            )
    const net = await node.peer.networkStatus()
    return { blindStore: net.blindStore, records, devices: net.devices.map((d) => ({ peerId: d.peerId, state: d.state, address: d.address })) }
  },

  /** A kitsync peer's connected sessions, and which members it has. */
  async status() {
    const net = await node.peer.networkStatus()
    return { connected: net.connected, devices: net.devices.map((d) => ({ peerId: d.peerId, state: d.state })) }
  },

  /** One write; replies with its start time at once (the write's durability is not awaited). */
  async set({ collection, key, value }) {
    const t0 = now()
    const p = node.set(collection, key, value)
    p.catch((err) => process.send({ event: 'error', error: String(err) }))
    return { t0 }
  },

  /**
   * `count` separate writes (each its own transaction), un-awaited (all issued in one go) or
   * awaited one by one; replies when all are durable (kitsync) or issued (y-websocket).
   */
  async burst({ collection, prefix, count, awaited }) {
    const t0 = now()
    if (awaited) {
      for (let i = 0; i < count; i++) await node.set(collection, prefix + i, { n: i, s: 'burst' })
      return { t0, issuedAt: now(), doneAt: now() }
    }
    const writes = []
    for (let i = 0; i < count; i++) writes.push(node.set(collection, prefix + i, { n: i, s: 'burst' }))
    const issuedAt = now()
    await Promise.all(writes)
    return { t0, issuedAt, doneAt: now() }
  },

  /** Write the records of mesh-data.js (about `bytes` of JSON), `window` at a time. */
  async fill({ collection, bytes, window = 1000 }) {
    const t0 = now()
    let total = 0
    let count = 0
    let pending = []
    while (total < bytes) {
      const { key, value, size } = jsonRecord(count++)
      total += size
      pending.push(node.set(collection, key, value))
      if (pending.length >= window) {
        await Promise.all(pending)
        pending = []
      }
    }
    await Promise.all(pending)
    if (node.drained !== undefined) await node.drained(collection)
    return { records: count, jsonBytes: total, fillMs: now() - t0 }
  },

  /**
   * Arm a watcher: an event { event: 'seen', tag, key, t } at each remote change of `key`, or
   * one { event: 'reached', tag, t, count } once `count` distinct keys starting with `prefix`
   * have changed remotely.
   */
  async watch({ tag, key, prefix, count }) {
    if (!listening) {
      listening = true
      node.listen()
    }
    if (key !== undefined) {
      const w = (keys) => {
        if (keys.includes(key)) process.send({ event: 'seen', tag, key, t: now() })
      }
      watchers.add(w)
      return {}
    }
    const seen = new Set()
    let first
    const w = (keys) => {
      first ??= now()
      for (const k of keys) if (k.startsWith(prefix)) seen.add(k)
      if (seen.size >= count) {
        watchers.delete(w)
        process.send({ event: 'reached', tag, t: now(), first, count: seen.size })
      }
    }
    watchers.add(w)
    return {}
  },

  async unwatch() {
    watchers.clear()
    return {}
  },

  async memory() {
    const m = process.memoryUsage()
    return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
  },

  async stop() {
    watchers.clear()
    const t0 = now()
    await node?.stop()
    node = undefined
    return { stopMs: now() - t0 }
  },
}

/** Resolves when the websocket has handed everything queued to the kernel. */
async function drained(provider) {
  const deadline = now() + 30_000
  while ((provider.ws?.bufferedAmount ?? 0) > 0) {
    if (now() > deadline) throw new Error('websocket did not drain within 30 s')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

process.on('message', async ({ id, cmd, args }) => {
  try {
    const fn = commands[cmd]
    if (fn === undefined) throw new Error(`unknown command ${cmd}`)
    process.send({ id, result: await fn(args ?? {}) })
  } catch (err) {
    process.send({ id, error: err instanceof Error ? `${err.code === undefined ? '' : err.code + ': '}${err.message}\n${err.stack}` : String(err) })
  }
})
// The parent went away: stop cleanly; nothing is left to keep the process alive then.
process.on('disconnect', () => {
  void commands.stop().catch(() => undefined)
})
// Commands of another section: `fork(mesh-peer.js, [module])` adds what module.commands(ctx) returns.
if (process.argv[2] !== undefined) {
  const extension = await import(pathToFileURL(process.argv[2]).href)
  Object.assign(commands, extension.commands({ node: () => node, now, send: (msg) => process.send(msg) }))
}
process.send({ event: 'ready' })
