/**
 * The HTTP server's event streams and body limits, with the server in the test process (so the
 * keep-alive interval can be short): a real LocalWorkspace on LevelDB in a temporary home, the
 * real control server on its socket, real HTTP over loopback. The CLI-level tests of the HTTP
 * API are in http-api.test.ts.
 */
import { createServer, type AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ControlServer } from '../../src/daemon/control-server.js'
import { ApiRoutes } from '../../src/daemon/http-routes.js'
import { HttpServer, readJsonBody } from '../../src/daemon/http-server.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { PeerMetrics } from '../../src/daemon/metrics.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

const TOKEN = 'k'.repeat(43)
const auth = { Authorization: `Bearer ${TOKEN}` }

let ws: LocalWorkspace
let control: ControlServer
let routes: ApiRoutes
let metrics: PeerMetrics
let server: HttpServer

beforeAll(async () => {
  const dir = await makeTempDir('ks-http-')
  ws = await LocalWorkspace.open({ home: join(dir, 'home') })
  control = await ControlServer.listen(ws, join(dir, 's.sock'))
  metrics = new PeerMetrics({
    deviceId: 'test',
    version: 'test',
    stats: () => ws.stats(),
    syncStatus: () => ws.sync.status(),
    list: () => ws.list(),
    storageStats: (c) => ws.storageStats(c),
    network: () =>
      Promise.resolve({ peerId: 'test', listen: [], discovery: { mdns: 'off' }, bootstrap: [], connected: 0, refusedConnections: 0, keyEpoch: 0, devices: [] }),
    storeParts: {},
    onSyncOffline: (listener) => ws.on('sync:offline', listener),
  })
  routes = new ApiRoutes(control, metrics, 'test', 50)
  server = await HttpServer.listen({ port: 0, fallback: false, token: TOKEN, routes })
})

afterAll(async () => {
  await server.close()
  metrics.close()
  await control.close()
  await ws.close()
  await cleanup()
})

/** Read the stream until `done` accepts what came so far, or fail at the deadline. */
async function readUntil(res: Response, done: (text: string, ended: boolean) => boolean, ms: number): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = Date.now() + ms
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0) throw new Error(`not seen within ${ms} ms; got ${JSON.stringify(text)}`)
    let timer: NodeJS.Timeout | undefined
    const chunk = await Promise.race([reader.read(), new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), left)))])
    clearTimeout(timer)
    if (chunk === 'late') continue
    if (chunk.done) {
      if (done(text, true)) return text
      throw new Error(`the stream ended; got ${JSON.stringify(text)}`)
    }
    text += decoder.decode(chunk.value, { stream: true })
    if (done(text, false)) {
      reader.releaseLock()
      return text
    }
  }
}

describe('the HTTP server, in process', () => {
  it('keeps an event stream alive with comments, and ends it cleanly when the server closes', async () => {
    const res = await fetch(`${server.url}api/v1/events`, { headers: auth })
    expect(res.status).toBe(200)
    const text = await readUntil(res, (t) => t.split(': keep-alive\n\n').length > 2, 10_000)
    expect(text.startsWith(': kitsync events\n\nevent: watching\ndata: {"watch":1}\n\n')).toBe(true)
    // The server closes (the peer stops): the stream ends, and the client sees its end.
    const rest = readUntil(res, (_t, ended) => ended, 10_000)
    routes.close()
    await expect(rest).resolves.toBeTypeOf('string')
  })

  it('takes another port when the default one is taken, and fails with PORT_IN_USE on a port the user set', async () => {
    const holder = createServer()
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
    const taken = (holder.address() as AddressInfo).port
    try {
      const other = await HttpServer.listen({ port: taken, fallback: true, token: TOKEN, routes })
      expect(other.port).not.toBe(taken)
      expect((await fetch(`${other.url}api/v1/info`, { headers: auth })).status).toBe(200)
      await other.close()
      await expect(HttpServer.listen({ port: taken, fallback: false, token: TOKEN, routes })).rejects.toMatchObject({
        code: 'PORT_IN_USE',
        message: expect.stringContaining(`127.0.0.1:${taken}`) as string,
      })
    } finally {
      holder.close()
    }
  })

  it('refuses a body over the limit as it streams in, and a body that is not a JSON object', async () => {
    const stream = (parts: string[]): IncomingMessage =>
      Object.assign(Readable.from(parts.map((p) => Buffer.from(p))), { headers: {} }) as unknown as IncomingMessage
    // No Content-Length (chunked): the limit is checked on what arrives.
    await expect(readJsonBody(stream(['{"a":"', 'x'.repeat(600), 'y'.repeat(600), '"}']), 1000)).rejects.toMatchObject({ code: 'RECORD_TOO_LARGE' })
    await expect(readJsonBody(stream(['{"a":', '1}']), 1000)).resolves.toEqual({ a: 1 })
    await expect(readJsonBody(stream([]), 1000)).resolves.toEqual({})
    await expect(readJsonBody(stream(['null']), 1000)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(readJsonBody(stream(['{"a":']), 1000)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
