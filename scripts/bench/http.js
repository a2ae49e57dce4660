// Benchmark section "http": the peer's HTTP API on loopback against its control socket —
// sequential acknowledged writes, a change to its Server-Sent Event, and a /metrics scrape.
/* global fetch -- Node 18+ has it; the globals list of the lint config predates it */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { openWorkspace } from '../../dist/index.js'
import { LOOPBACK_PEER_ARGS, median, percentile, round, startPeer } from './lib.js'

export const id = 'http'
export const title = 'HTTP API: writes, events and metrics against the control socket'

const SCALE = process.env.BENCH_QUICK === '1' ? 0.1 : 1
const n = (count) => Math.max(1, Math.round(count * SCALE))
const WRITES = n(2_000)
const EVENTS = n(200)
const SCRAPES = n(50)

export async function run(ctx) {
  const { measure, tmp, log } = ctx
  const home = await tmp.make('http')
  const peer = await startPeer(home, [...LOOPBACK_PEER_ARGS, '--http-port', '0'])
  try {
    const url = peer.started.http
    if (typeof url !== 'string') throw new Error('the peer serves no HTTP API (its started line has no http)')
    const token = (await readFile(join(home, 'http.token'), 'utf8')).trim()
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }
    const set = (collection, key, value) =>
      fetch(`${url}api/v1/set`, { method: 'POST', headers, body: JSON.stringify({ collection, key, value }) }).then(async (res) => {
        const body = await res.json()
        if (res.status !== 200) throw new Error(`set answered ${res.status} ${JSON.stringify(body)}`)
      })
    log(`  ${WRITES} sequential writes each way, ${EVENTS} changes to their event, ${SCRAPES} scrapes; fetch (keep-alive) against the library over the socket`)

    await measure(
      { id: 'http-writes', title: 'sequential acknowledged writes over HTTP', unit: 'writes/s', method: `${WRITES} POST /api/v1/set, each awaited` },
      async () => {
        for (let i = 0; i < 100; i++) await set('warm', `k${i}`, i)
        const times = []
        const started = performance.now()
        for (let i = 0; i < WRITES; i++) {
          const t = performance.now()
          await set('bench', `k${i % 1000}`, { n: i })
          times.push(performance.now() - t)
        }
        const s = (performance.now() - started) / 1000
        return { value: round(WRITES / s, 0), details: { medianMs: round(median(times), 2), p99Ms: round(percentile(times, 99), 2) } }
      },
    )

    await measure(
      {
        id: 'socket-writes',
        title: 'sequential acknowledged writes over the control socket (library)',
        unit: 'writes/s',
        method: `${WRITES} ws.set through the peer`,
      },
      async () => {
        const ws = await openWorkspace({ home, mode: 'peer' })
        try {
          const times = []
          const started = performance.now()
          for (let i = 0; i < WRITES; i++) {
            const t = performance.now()
            await ws.set('bench', `k${i % 1000}`, { n: i })
            times.push(performance.now() - t)
          }
          const s = (performance.now() - started) / 1000
          return { value: round(WRITES / s, 0), details: { medianMs: round(median(times), 2), p99Ms: round(percentile(times, 99), 2) } }
        } finally {
          await ws.close()
        }
      },
    )

    await measure(
      {
        id: 'http-event-latency',
        title: 'a write over HTTP to its Server-Sent Event',
        unit: 'ms (median)',
        method: `${EVENTS} writes, each awaited as its event`,
      },
      async () => {
        const stop = new AbortController()
        const res = await fetch(`${url}api/v1/events?collection=events`, { headers, signal: stop.signal })
        const reader = res.body.getReader()
        const decoder = new TextDecoder()
        let buffer = ''
        const nextChange = async () => {
          for (;;) {
            const end = buffer.indexOf('\n\n')
            if (end >= 0) {
              const block = buffer.slice(0, end)
              buffer = buffer.slice(end + 2)
              if (block.startsWith('event: change')) return
              continue
            }
            const { value, done } = await reader.read()
            if (done) throw new Error('the event stream ended')
            buffer += decoder.decode(value, { stream: true })
          }
        }
        const times = []
        try {
          for (let i = 0; i < EVENTS; i++) {
            const t = performance.now()
            await Promise.all([set('events', `e${i}`, i), nextChange()])
            times.push(performance.now() - t)
          }
        } finally {
          stop.abort()
        }
        return { value: round(median(times), 2), details: { p99Ms: round(percentile(times, 99), 2) } }
      },
    )

    await measure({ id: 'metrics-scrape', title: 'GET /metrics', unit: 'ms (median)', method: `${SCRAPES} scrapes of a peer with 3 collections` }, async () => {
      const times = []
      let bytes = 0
      for (let i = 0; i < SCRAPES; i++) {
        const t = performance.now()
        const text = await (await fetch(`${url}metrics`, { headers })).text()
        times.push(performance.now() - t)
        bytes = text.length
      }
      return { value: round(median(times), 2), details: { p99Ms: round(percentile(times, 99), 2), bytes } }
    })
  } finally {
    await peer.stop()
  }
}
