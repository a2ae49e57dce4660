// Commands of the "workload" section, loaded into a mesh-peer.js child (a kitsync Peer in its
// own process): fill a trading workspace through the workspace API, join and verify it, change
// an alert on a timer, import journal entries, and watch an alert on a reader. Times are
// CLOCK_MONOTONIC milliseconds (process.hrtime), shared by every process of the machine.

const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
const SIDES = ['buy', 'sell']
const NOTES = ['breakout above resistance', 'stopped out', 'scaled in', 'took partial profit', 'earnings play', 'gap fill', 'trailing stop hit', '']

/** xorshift32 from a seed: the same data on every run. */
function rng(seed) {
  let s = (seed * 2654435761) >>> 0 || 1
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 4294967296
  }
}

/** Ticker `i` of a universe: 1-5 letters, optionally an exchange suffix (AAPL, BRK.B, X.L ...). */
export function symbol(i) {
  let n = i
  let text = ''
  do {
    text += ALPHA[n % 26]
    n = Math.floor(n / 26)
  } while (n > 0)
  return i % 7 === 0 ? `${text}.L` : text
}

export function watchlist(i, size) {
  const rand = rng(i + 1)
  const symbols = new Set()
  while (symbols.size < size) symbols.add(symbol(Math.floor(rand() * 20_000)))
  return { name: `Watchlist ${i + 1}`, symbols: [...symbols] }
}

export function alert(i) {
  const rand = rng(100_000 + i)
  return { symbol: symbol(Math.floor(rand() * 20_000)), price: Math.round(rand() * 100_000) / 100, active: i % 5 !== 0 }
}

export function settings(fields) {
  const out = {}
  const values = ['dark', 14, true, 'Europe/Paris', 0.5, 'candles', false, 'USD', 250, 'compact']
  for (let f = 0; f < fields; f++) out[`option${String(f).padStart(2, '0')}`] = values[f % values.length]
  return out
}

export function journalEntry(i, at) {
  const rand = rng(1_000_000 + i)
  return {
    at,
    symbol: symbol(Math.floor(rand() * 20_000)),
    side: SIDES[i % 2],
    qty: 1 + Math.floor(rand() * 500),
    price: Math.round(rand() * 100_000) / 100,
    note: NOTES[i % NOTES.length],
  }
}

/** Counts of what a trading workspace holds (the check of a complete copy). */
async function counts(ws) {
  const all = async (collection) => {
    try {
      return await ws.getAll(collection)
    } catch (err) {
      if (err?.code === 'UNKNOWN_COLLECTION') return {}
      throw err
    }
  }
  const lists = Object.values(await all('watchlists'))
  const sizes = lists.map((l) => (Array.isArray(l?.symbols) ? l.symbols.length : 0))
  const s = (await all('settings')).ui
  return {
    watchlists: lists.length,
    symbolsMin: sizes.length === 0 ? 0 : Math.min(...sizes),
    symbolsMax: sizes.length === 0 ? 0 : Math.max(...sizes),
    alerts: Object.keys(await all('alerts')).length,
    settingsFields: s !== null && typeof s === 'object' ? Object.keys(s).length : 0,
    journal: Object.keys(await all('journal')).length,
  }
}

function complete(c, expect) {
  return (
    c.watchlists === expect.watchlists &&
    c.symbolsMin === expect.symbols &&
    c.symbolsMax === expect.symbols &&
    c.alerts === expect.alerts &&
    c.settingsFields === expect.settingsFields &&
    c.journal >= expect.journal
  )
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export function commands({ node, now, send }) {
  /** Append `count` journal entries to `w`, `batch` at a time (each batch awaited), as fast as they are accepted. */
  const importInto = async (w, { count, batch, offset }) => {
    const t0 = now()
    const start = Date.now()
    const batchMs = []
    for (let i = 0; i < count; i += batch) {
      const b0 = now()
      const n = Math.min(batch, count - i)
      await Promise.all(Array.from({ length: n }, (_, k) => w.append('journal', journalEntry(offset + i + k, start + i + k))))
      batchMs.push(now() - b0)
    }
    const t1 = now()
    return { t0, t1, ms: t1 - t0, batchMs }
  }
  const peer = () => node().peer
  const ws = () => peer().workspace
  let ticker
  let alertWatch

  return {
    /** Fill the trading workspace through the workspace API; each part timed. */
    async tradingFill({ watchlists, symbols, alerts, settingsFields, journal, window = 1000 }) {
      const w = ws()
      const parts = {}
      let t = now()
      const t0 = t
      const lap = (name) => {
        const t2 = now()
        parts[name] = t2 - t
        t = t2
      }
      for (let i = 0; i < watchlists; i++) await w.set('watchlists', `wl-${i}`, watchlist(i, symbols))
      lap('watchlistsMs')
      await Promise.all(Array.from({ length: alerts }, (_, i) => w.set('alerts', `alert-${i}`, alert(i))))
      lap('alertsMs')
      await w.set('settings', 'ui', settings(settingsFields))
      lap('settingsMs')
      const start = Date.now()
      let pending = []
      for (let i = 0; i < journal; i++) {
        pending.push(w.append('journal', journalEntry(i, start + i)))
        if (pending.length >= window) {
          await Promise.all(pending)
          pending = []
        }
      }
      await Promise.all(pending)
      lap('journalMs')
      const fillMs = now() - t0
      const exported = await w.export()
      const jsonBytes = Buffer.byteLength(JSON.stringify(exported.collections))
      return { fillMs, ...parts, jsonBytes, counts: await counts(w), collections: await w.list() }
    },

    async counts() {
      return counts(ws())
    },

    /** Join with a token; resolves once this device holds the whole workspace (`expect`). */
    async joinVerify({ token, name, expect, timeoutMs = 300_000 }) {
      const t0 = now()
      const result = await peer().join(token, name, { waitMs: timeoutMs })
      const joinedAt = now()
      let c
      let polls = 0
      let readMs
      for (;;) {
        const r0 = now()
        c = await counts(ws())
        readMs ??= now() - r0
        polls++
        if (complete(c, expect)) break
        if (now() - t0 > timeoutMs) throw new Error(`not complete after ${timeoutMs / 1000} s: ${JSON.stringify(c)}`)
        await sleep(100)
      }
      const t1 = now()
      const net = await peer().networkStatus()
      const from = net.devices.find((d) => d.peerId === result.inviter)
      return {
        t0,
        joinMs: joinedAt - t0,
        firstReadMs: readMs,
        totalMs: t1 - t0,
        caughtUp: result.caughtUp,
        polls,
        counts: c,
        bytesIn: from?.bytesIn,
        bytesOut: from?.bytesOut,
      }
    },

    /** Per connected device: bytes in and out of its sync session. */
    async sessionBytes() {
      const net = await peer().networkStatus()
      return net.devices.filter((d) => d.state === 'connected').map((d) => ({ peerId: d.peerId, bytesIn: d.bytesIn, bytesOut: d.bytesOut }))
    },

    /**
     * Connect to a member by address and make sure a sync session runs. A connection made
     * before both sides knew each other as members gets no session by itself (Mesh opens one
     * on connect only), so the session is opened explicitly.
     */
    async syncTo({ address, peerId }) {
      const mesh = peer().mesh
      await mesh.dial(address)
      if (!mesh.connectedPeers().includes(peerId)) await mesh.openSyncTo(peerId)
      return { connected: mesh.connectedPeers().length }
    },

    /** Sync errors in the audit log (a session that ended with an error). */
    async syncErrors() {
      return { entries: (await ws().log()).filter((e) => e.type === 'sync-error') }
    },

    async flush() {
      await ws().flush()
      return {}
    },

    /** Change alert `key` every `intervalMs` (not awaiting the writes), until stopAlerts. */
    async startAlerts({ key, intervalMs }) {
      if (ticker !== undefined) throw new Error('the alert writer already runs')
      const w = ws()
      const state = { sent: [], errors: 0, stopped: false, timer: undefined }
      const base = alert(0)
      const tick = () => {
        if (state.stopped) return
        const seq = state.sent.length
        const t0 = now()
        state.sent.push(t0)
        w.set('alerts', key, { ...base, price: base.price + seq / 100, seq }).catch(() => state.errors++)
        state.timer = setTimeout(tick, intervalMs)
      }
      ticker = state
      tick()
      return {}
    },

    async stopAlerts() {
      const state = ticker
      ticker = undefined
      if (state === undefined) throw new Error('the alert writer does not run')
      state.stopped = true
      clearTimeout(state.timer)
      return { sent: state.sent, errors: state.errors }
    },

    /** Note (seq, time) at each remote change of alert `key`, until takeAlertSeen. */
    async watchAlert({ key }) {
      if (alertWatch === undefined) {
        alertWatch = { key, seen: [] }
        ws().on('change', (e) => {
          if (e.source !== 'remote' || e.collection !== 'alerts' || e.key !== alertWatch.key) return
          const seq = e.value?.seq
          if (typeof seq === 'number') alertWatch.seen.push({ seq, t: now() })
        })
      }
      alertWatch.key = key
      alertWatch.seen = []
      return {}
    },

    async takeAlertSeen() {
      const seen = alertWatch?.seen ?? []
      if (alertWatch !== undefined) alertWatch.seen = []
      return { seen }
    },

    /**
     * One event { event: 'journalReached', tag, t, first } once `count` remote journal records
     * arrived here (counted from this call).
     */
    async watchJournal({ tag, count }) {
      let seen = 0
      let first
      const off = ws().on('change', (e) => {
        if (e.source !== 'remote' || e.collection !== 'journal') return
        first ??= now()
        if (++seen >= count) {
          off()
          send({ event: 'journalReached', tag, t: now(), first, count: seen })
        }
      })
      return {}
    },

    /**
     * The import from another process: open the workspace of `home` through its running peer
     * (control socket) and append `count` entries, `batch` at a time, each batch awaited.
     */
    async importViaSocket({ home, count, batch, offset = 0 }) {
      const { openWorkspace } = await import('../../dist/index.js')
      const w = await openWorkspace({ home, mode: 'peer' })
      try {
        return await importInto(w, { count, batch, offset })
      } finally {
        await w.close()
      }
    },

    /** Append `count` journal entries, `batch` at a time (each batch awaited), as fast as they are accepted. */
    async importJournal({ count, batch, offset = 0 }) {
      return importInto(ws(), { count, batch, offset })
    },
  }
}
