/**
 * The HTTP API of a running peer, through real processes and real HTTP on loopback (Node's
 * fetch; node:http where fetch cannot send the header under test): the token, the Host and
 * Origin checks, the control methods, the event stream, the error statuses, the OpenAPI
 * document, /metrics after a sync between two real peers, and --no-http.
 */
import { request } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { readFile, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CONTROL_METHODS } from '../../src/protocol/control.js'
import { HTTP_STATUS } from '../../src/protocol/http-api.js'
import { NET, devicesOfTest } from '../helpers/devices.js'
import { parsePrometheus } from '../helpers/prometheus.js'
import {
  expectCliError,
  expectJsonCliError,
  fileMode,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  REPO_ROOT,
  statOrUndefined,
  STOP_TIMEOUT_MS,
  waitUntil,
} from '../helpers/cli.js'

const { peer, invite } = devicesOfTest()

interface Dashboard {
  url: string
  token: string
}

const dashboard = (home: string): Promise<Dashboard> => kitsyncJson<Dashboard>(home, ['dashboard'])
const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` })

async function call(
  d: Dashboard,
  method: string,
  params: Record<string, unknown>,
): Promise<{ status: number; body: { result?: unknown; error?: { code: string; message: string } } }> {
  const res = await fetch(`${d.url}api/v1/${method}`, {
    method: 'POST',
    headers: { ...bearer(d.token), 'Content-Type': 'application/json' },
    body: JSON.stringify(params),
  })
  return { status: res.status, body: (await res.json()) as never }
}

/** A request through node:http, which (unlike fetch) sends any Host header it is given. */
function rawRequest(
  url: string,
  options: { method?: string; headers: Record<string, string | number>; body?: string },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (options.body !== undefined) req.write(options.body)
    // A body declared longer than what is written: the answer comes before it is all sent.
    if (options.headers['Content-Length'] === undefined || options.body?.length === options.headers['Content-Length']) req.end()
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')))
  })
}

async function scrape(d: Dashboard): Promise<Map<string, number>> {
  const res = await fetch(`${d.url}metrics`, { headers: bearer(d.token) })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parsePrometheus(await res.text())
}

/** The events of an SSE response, as they arrive. */
async function* sseEvents(res: Response): AsyncGenerator<{ event: string; data: unknown }> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += decoder.decode(value, { stream: true })
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (event !== undefined && data !== undefined) yield { event, data: JSON.parse(data) as unknown }
    }
  }
}

/** The first event `match` accepts, or a failure at the deadline. */
async function nextEvent(events: AsyncGenerator<{ event: string; data: unknown }>, match: (e: { event: string; data: unknown }) => boolean, ms: number) {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no matching event within ${ms} ms`)), ms)
  })
  const find = (async () => {
    // next(), not for-await: leaving a for-await loop would close the stream for later calls.
    for (let r = await events.next(); r.done !== true; r = await events.next()) if (match(r.value)) return r.value
    throw new Error('the event stream ended')
  })()
  try {
    return await Promise.race([find, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** TCP ports a process listens on (Linux: its socket inodes matched in /proc/net/tcp{,6}). */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    const m = /^socket:\[(\d+)\]$/.exec(target)
    if (m !== null) inodes.add(m[1] as string)
  }
  const ports: number[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '')
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f[3] === '0A' && inodes.has(f[9] as string)) ports.push(parseInt((f[1] as string).split(':')[1] as string, 16))
    }
  }
  return ports.sort((a, b) => a - b)
}

const detached = new Set<number>()
afterEach(async () => {
  for (const pid of detached) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  detached.clear()
})

describe('the HTTP API', () => {
  it('refuses every request without the token or with a wrong one (401, no data), and a foreign Host or Origin (403)', async () => {
    const home = await makeHome()
    const p = await peer(home)
    const d = await dashboard(home)
    expect(d.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    expect(p.started).toMatchObject({ http: d.url })
    const port = new URL(d.url).port
    const doc = (await (await fetch(`${d.url}api/v1/openapi.json`, { headers: bearer(d.token) })).json()) as { paths: Record<string, Record<string, unknown>> }
    const targets = [
      ...Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((verb) => [verb.toUpperCase(), path])),
      ['GET', '/'],
      ['GET', '/nothing'],
    ]
    expect(targets.length).toBeGreaterThan(CONTROL_METHODS.length)
    const wrong = [
      undefined,
      'Bearer ',
      `Bearer ${d.token.slice(0, -1)}x`,
      `Bearer ${d.token}x`,
      `Basic ${Buffer.from(`kitsync:${d.token}`).toString('base64')}`,
      d.token,
    ]
    for (const [verb, path] of targets) {
      for (const auth of wrong) {
        const res = await fetch(`${d.url}${(path as string).slice(1)}`, {
          method: verb,
          headers: auth === undefined ? {} : { Authorization: auth },
          ...(verb === 'POST' ? { body: JSON.stringify({ collection: 'notes', key: 'k', value: 1 }) } : {}),
        })
        const text = await res.text()
        expect(res.status, `${verb} ${path} with ${auth ?? 'no Authorization'}`).toBe(401)
        expect(res.headers.get('www-authenticate')).toBe('Bearer realm="kitsync"')
        expect(res.headers.get('access-control-allow-origin')).toBeNull()
        expect(Object.keys(JSON.parse(text) as object)).toEqual(['error'])
        expect((JSON.parse(text) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED')
        expect(text).not.toContain(p.started.deviceId)
        expect(text).not.toContain(p.started.workspaceId)
      }
    }
    // Nothing was written by any of them.
    expect(JSON.parse(await kitsyncOk(home, ['list', '--json']))).toEqual([])

    // DNS rebinding: the right token, but a Host or Origin that is not the server's.
    for (const host of ['evil.example:' + port, `127.0.0.1:${Number(port) + 1}`, 'localhost', `attacker.localhost:${port}`]) {
      const r = await rawRequest(`${d.url}api/v1/info`, { headers: { ...bearer(d.token), Host: host } })
      expect(r.status, host).toBe(403)
      expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'PERMISSION_DENIED' } })
      expect(r.text).not.toContain(p.started.deviceId)
    }
    for (const origin of ['http://evil.example', `http://evil.example:${port}`, `https://127.0.0.1:${port}`, 'null']) {
      const res = await fetch(`${d.url}api/v1/info`, { headers: { ...bearer(d.token), Origin: origin } })
      expect(res.status, origin).toBe(403)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PERMISSION_DENIED')
    }
    // Its own names are served: 127.0.0.1, localhost and [::1] with its port, and its own Origin.
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      const r = await rawRequest(`${d.url}api/v1/info`, { headers: { ...bearer(d.token), Host: host, Origin: `http://${host}` } })
      expect(r.status, host).toBe(200)
      expect(JSON.parse(r.text)).toMatchObject({ result: { deviceId: p.started.deviceId } })
    }
  })

  it('serves the control methods: set over HTTP is seen by kitsync get, errors carry the CLI codes with their statuses', async () => {
    const home = await makeHome()
    await peer(home)
    const d = await dashboard(home)
    expect(await call(d, 'set', { collection: 'notes', key: 'n1', value: { text: 'from http' } })).toEqual({ status: 200, body: { result: true } })
    expect(JSON.parse(await kitsyncOk(home, ['get', 'notes', 'n1', '--json']))).toEqual({ text: 'from http' })
    await kitsyncOk(home, ['set', 'notes', 'n2', '"from the cli"'])
    const got = await fetch(`${d.url}api/v1/get?collection=notes&key=n2`, { headers: bearer(d.token) })
    expect(await got.json()).toEqual({ result: { found: true, value: 'from the cli' } })

    // The same code as the CLI, with the status of HTTP_STATUS.
    const cli = expectJsonCliError(await kitsync(home, ['get', 'nope', 'k', '--json']), 'UNKNOWN_COLLECTION', 3)
    const missing = await call(d, 'get', { collection: 'nope', key: 'k' })
    expect(missing).toEqual({
      status: HTTP_STATUS.UNKNOWN_COLLECTION,
      body: { error: { code: cli.code, message: cli.message, details: { collection: 'nope' } } },
    })
    expect(missing.status).toBe(404)
    expect(await call(d, 'set', { collection: 'notes', key: 1, value: 1 })).toMatchObject({ status: 400, body: { error: { code: 'INVALID_ARGUMENT' } } })
    // A body that is not JSON, or not an object: INVALID_ARGUMENT.
    for (const body of ['{"collection": ', '[1,2]', '"text"']) {
      const res = await fetch(`${d.url}api/v1/set`, { method: 'POST', headers: bearer(d.token), body })
      expect(res.status, body).toBe(400)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_ARGUMENT')
    }
    // A method that writes is POST only; the answer says what it takes.
    const get = await fetch(`${d.url}api/v1/set?collection=notes&key=x&value=1`, { headers: bearer(d.token) })
    expect(get.status).toBe(405)
    expect(get.headers.get('allow')).toBe('POST')
    expect(((await get.json()) as { error: { code: string } }).error.code).toBe('CONTROL_PROTOCOL')
    const put = await fetch(`${d.url}api/v1/info`, { method: 'PUT', headers: bearer(d.token) })
    expect([put.status, put.headers.get('allow')]).toEqual([405, 'GET, POST'])
    expect((await fetch(`${d.url}api/v1/nothing`, { headers: bearer(d.token) })).status).toBe(404)
    // A body over the limit is refused from its Content-Length, before it is read.
    const large = await rawRequest(`${d.url}api/v1/set`, {
      method: 'POST',
      headers: { ...bearer(d.token), Host: new URL(d.url).host, 'Content-Length': 64 * 1024 * 1024 + 1 },
      body: '{',
    })
    expect(large.status).toBe(413)
    expect(JSON.parse(large.text)).toMatchObject({ error: { code: 'RECORD_TOO_LARGE' } })
    expectJsonCliError(await kitsync(home, ['get', 'notes', 'x', '--json']), 'NOT_FOUND', 3)

    // The served OpenAPI document is docs/openapi.json, with a path for every control method.
    const served = await (await fetch(`${d.url}api/v1/openapi.json`, { headers: bearer(d.token) })).text()
    expect(served).toBe(await readFile(join(REPO_ROOT, 'docs', 'openapi.json'), 'utf8'))
    const paths = Object.keys((JSON.parse(served) as { paths: object }).paths)
    for (const method of CONTROL_METHODS) expect(paths).toContain(`/api/v1/${method}`)
  })

  it('streams a change made through the CLI as a Server-Sent Event, and ends the stream when the client goes away', async () => {
    const home = await makeHome()
    await peer(home)
    const d = await dashboard(home)
    const stop = new AbortController()
    const res = await fetch(`${d.url}api/v1/events?collection=notes&sync=true`, { headers: bearer(d.token), signal: stop.signal })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    const events = sseEvents(res)
    const watching = await nextEvent(events, (e) => e.event === 'watching', 10_000)
    expect(watching.data).toEqual({ watch: expect.any(Number) as number })
    expect((await scrape(d)).get('kitsync_http_event_streams')).toBe(1)
    await kitsyncOk(home, ['set', 'other', 'k', '1']) // another collection: not on this stream
    await kitsyncOk(home, ['set', 'notes', 'n1', '{"text":"hello"}'])
    const change = await nextEvent(events, (e) => e.event === 'change', 10_000)
    expect(change.data).toMatchObject({
      watch: (watching.data as { watch: number }).watch,
      collection: 'notes',
      key: 'n1',
      op: 'set',
      value: { text: 'hello' },
      source: 'local',
    })
    // The client goes away: the peer ends the stream and forgets it.
    stop.abort()
    await waitUntil(async () => ((await scrape(d)).get('kitsync_http_event_streams') === 0 ? true : undefined), 10_000, 'the event stream to end on the peer')
    // unwatch ends a stream from the peer's side.
    const again = await fetch(`${d.url}api/v1/watch`, { headers: bearer(d.token) })
    const second = sseEvents(again)
    const id = ((await nextEvent(second, (e) => e.event === 'watching', 10_000)).data as { watch: number }).watch
    expect(await call(d, 'unwatch', { watch: id })).toEqual({ status: 200, body: { result: true } })
    const ended = await (async () => {
      for await (const e of second) if (e.event === 'change') return 'a change'
      return 'ended'
    })()
    expect(ended).toBe('ended')
  })

  it('streams the sync events and serves /metrics as Prometheus text, with kitsync_ metrics that change after a sync between two real peers', async () => {
    const ha = await makeHome()
    const hb = await makeHome()
    await peer(ha)
    const a = await dashboard(ha)
    const before = await scrape(a)
    expect(before.get('kitsync_devices_connected')).toBe(0)
    expect(before.get('kitsync_process_resident_memory_bytes')).toBeGreaterThan(0)
    expect([...before.keys()].every((name) => name.startsWith('kitsync_'))).toBe(true)
    expect(before.get('kitsync_store_size_bytes{part="leveldb"}')).toBeGreaterThan(0)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    // The sync events of A, over HTTP, from before B runs.
    const stop = new AbortController()
    const events = sseEvents(await fetch(`${a.url}api/v1/events?sync=true`, { headers: bearer(a.token), signal: stop.signal }))
    await nextEvent(events, (e) => e.event === 'watching', 10_000)
    const pb = await peer(hb)
    const bee = pb.started.deviceId
    expect((await nextEvent(events, (e) => e.event === 'sync:connected', 20_000)).data).toMatchObject({ peerId: bee })
    await kitsyncOk(hb, ['set', 'notes', 'from-b', '{"text":"synced"}'])
    const remote = await nextEvent(events, (e) => e.event === 'change' && (e.data as { key?: string }).key === 'from-b', 20_000)
    expect(remote.data).toMatchObject({ collection: 'notes', op: 'set', value: { text: 'synced' }, source: 'remote' })
    stop.abort()
    const after = await waitUntil(
      async () => {
        const m = await scrape(a)
        return (m.get(`kitsync_device_updates_applied_total{device="${bee}"}`) ?? 0) > 0 && m.get('kitsync_devices_connected') === 1 ? m : undefined
      },
      20_000,
      'the update from B in the metrics of A',
    )
    expect(after.get(`kitsync_device_bytes_received_total{device="${bee}"}`)).toBeGreaterThan(0)
    expect(after.get(`kitsync_device_info{device="${bee}",name="bee",state="connected"}`)).toBe(1)
    expect(after.get('kitsync_collection_updates_applied_total{collection="notes"}')).toBeGreaterThan(0)
    expect(after.get('kitsync_collection_records{collection="notes"}')).toBe(1)
    expect(JSON.parse(await kitsyncOk(ha, ['get', 'notes', 'from-b', '--json']))).toEqual({ text: 'synced' })

    // The store's figures: two large writes pass the compaction threshold (256 KiB of log).
    expect(after.get('kitsync_collection_compactions_total{collection="big"}')).toBeUndefined()
    for (const key of ['b1', 'b2']) expect(await call(a, 'set', { collection: 'big', key, value: 'x'.repeat(200_000) })).toMatchObject({ status: 200 })
    const compacted = await waitUntil(
      async () => {
        const m = await scrape(a)
        return (m.get('kitsync_collection_compactions_total{collection="big"}') ?? 0) >= 1 ? m : undefined
      },
      20_000,
      'a compaction of the collection big in the metrics',
    )
    expect(compacted.get('kitsync_collection_log_entries{collection="big"}')).toBe(0)
    expect(compacted.get('kitsync_collection_stored_bytes{collection="big"}')).toBeGreaterThan(200_000)
    expect(compacted.get('kitsync_store_size_bytes{part="leveldb"}')).toBeGreaterThan(before.get('kitsync_store_size_bytes{part="leveldb"}') as number)
  })

  it(
    'keeps the token in a 0600 file, out of the log and of the command line; --no-http leaves no listener',
    async () => {
      const home = await makeHome()
      const started = await kitsyncJson<{ pid: number; listen: string[]; http?: string }>(home, ['peer', 'start', '--detach', ...NET, '--http-port', '0'])
      detached.add(started.pid)
      const d = await dashboard(home)
      expect(started.http).toBe(d.url)
      expect(d.token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(await fileMode(join(home, 'http.token'))).toBe(0o600)
      expect(await fileMode(join(home, 'http.json'))).toBe(0o600)
      expect((await readFile(join(home, 'http.token'), 'utf8')).trim()).toBe(d.token)
      // Without a browser to open (--print), the URL with a one-time login code.
      expect(await kitsyncOk(home, ['dashboard', '--print'])).toMatch(new RegExp(`^${d.url.replace(/[./]/g, '\\$&')}login\\?code=v1\\.\\S+\n$`))
      expect((await fetch(`${d.url}api/v1/status`, { headers: bearer(d.token) })).status).toBe(200)
      const cmdline = await readFile(`/proc/${started.pid}/cmdline`, 'utf8').catch(() => undefined)
      if (cmdline !== undefined) expect(cmdline).not.toContain(d.token)
      const libp2pPort = Number(/\/tcp\/(\d+)\//.exec(started.listen[0] as string)?.[1])
      if (process.platform === 'linux')
        expect(await listeningPorts(started.pid)).toEqual([libp2pPort, Number(new URL(d.url).port), Number(new URL(d.url).port)].sort((x, y) => x - y))
      await kitsyncOk(home, ['peer', 'stop'])
      detached.delete(started.pid)
      expect(await readFile(join(home, 'peer.log'), 'utf8')).not.toContain(d.token)
      expect(await statOrUndefined(join(home, 'http.json'))).toBeUndefined()

      // --no-http: no HTTP listener, no http.json, and dashboard says so; the token is kept.
      const p = await peer(home, ['--no-http'])
      expect(p.started).not.toHaveProperty('http')
      const own = Number(/\/tcp\/(\d+)\//.exec((p.started as unknown as { listen: string[] }).listen[0] as string)?.[1])
      if (process.platform === 'linux') expect(await listeningPorts(p.proc.pid)).toEqual([own])
      expect(await statOrUndefined(join(home, 'http.json'))).toBeUndefined()
      expectJsonCliError(await kitsync(home, ['dashboard', '--json']), 'NOT_FOUND', 3)
      await expect(fetch(d.url, { headers: bearer(d.token) })).rejects.toThrow()
      expect((await readFile(join(home, 'http.token'), 'utf8')).trim()).toBe(d.token)
    },
    STOP_TIMEOUT_MS * 3,
  )

  it('a --http-port another process holds fails the start with PORT_IN_USE, leaving nothing running', async () => {
    const holder = createServer()
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
    const taken = (holder.address() as AddressInfo).port
    try {
      const home = await makeHome()
      const message = expectCliError(await kitsync(home, ['peer', 'start', ...NET, '--http-port', String(taken)]), 'PORT_IN_USE', 7)
      expect(message).toContain(`127.0.0.1:${taken}`)
      expect(await statOrUndefined(join(home, 'http.json'))).toBeUndefined()
      expect(await statOrUndefined(join(home, 'peer.pid'))).toBeUndefined()
      expectCliError(await kitsync(home, ['dashboard']), 'PEER_NOT_RUNNING', 4)
    } finally {
      holder.close()
    }
  })

  it('dashboard without a running peer is PEER_NOT_RUNNING', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    expectJsonCliError(await kitsync(home, ['dashboard', '--json']), 'PEER_NOT_RUNNING', 4)
  })
})
