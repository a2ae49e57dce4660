import type { ServerResponse } from 'node:http'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError } from '../core/errors.js'
import type { ControlMethod } from '../protocol/control.js'
import { EVENTS_PATH, httpVerbs, methodOfPath, METRICS_PATH, OPENAPI_PATH, sseComment, sseMessage } from '../protocol/http-api.js'
import { buildOpenApi } from '../protocol/http-openapi.js'
import type { ControlServer } from './control-server.js'
import { MethodNotAllowed, readJsonBody, sendJson, type HttpHandler, type HttpRequest, type HttpRoutes } from './http-server.js'
import type { PeerMetrics } from './metrics.js'

const log = debugLog('daemon:http')

/** A comment on every event stream this often, so clients and proxies see it is alive. */
export const KEEP_ALIVE_MS = 15_000
/** An event stream whose client reads slower than this much is queued for it is ended (the client watches again). */
const MAX_STREAM_BACKLOG = 8 * 1024 * 1024

/** The control dispatch the routes call: the control socket's own (daemon/control-server.ts). */
export type ControlDispatch = Pick<ControlServer, 'hello' | 'call' | 'watch'>

/**
 * The routes of the peer's HTTP server: the control API under /api/v1/ (one path per method of
 * CONTROL_METHODS, dispatched by the control socket's own code), its event stream, its OpenAPI
 * document, and /metrics.
 */
export class ApiRoutes implements HttpRoutes {
  private readonly streams = new Map<number, AbortController>()
  private nextWatch = 1
  private openapi: string | undefined

  constructor(
    private readonly control: ControlDispatch,
    private readonly metrics: PeerMetrics,
    private readonly version: string,
    /** How often an event stream gets a keep-alive comment (default KEEP_ALIVE_MS). */
    private readonly keepAliveMs = KEEP_ALIVE_MS,
  ) {}

  find(path: string): HttpHandler | undefined {
    if (path === OPENAPI_PATH) return (req, res) => this.openApi(req, res)
    if (path === EVENTS_PATH) return (req, res) => this.only(req, res, ['GET'], () => this.events(req, res))
    if (path === METRICS_PATH) return (req, res) => this.only(req, res, ['GET'], () => this.scrape(res))
    const method = methodOfPath(path)
    if (method === undefined) return undefined
    return (req, res) => this.only(req, res, httpVerbs(method), () => this.method(method, req, res))
  }

  /** End every event stream (the server is closing). */
  close(): void {
    for (const stop of this.streams.values()) stop.abort()
  }

  private async only(req: HttpRequest, res: ServerResponse, verbs: string[], then: () => Promise<void>): Promise<void> {
    if (!verbs.includes(req.method)) {
      res.setHeader('Allow', verbs.join(', '))
      throw new MethodNotAllowed(`${req.path} takes ${verbs.join(' or ')}, not ${req.method}`)
    }
    await then()
  }

  private async openApi(req: HttpRequest, res: ServerResponse): Promise<void> {
    await this.only(req, res, ['GET'], async () => {
      this.openapi ??= JSON.stringify(buildOpenApi(this.version), null, 2) + '\n'
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' })
      res.end(this.openapi)
    })
  }

  private async scrape(res: ServerResponse): Promise<void> {
    this.metrics.eventStreams = this.streams.size
    const { contentType, text } = await this.metrics.scrape()
    res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' })
    res.end(text)
  }

  private async method(method: ControlMethod, req: HttpRequest, res: ServerResponse): Promise<void> {
    if (method === 'watch') return this.events(req, res)
    // A GET (read-only methods) takes its params from the query: strings only.
    const params = req.method === 'GET' ? Object.fromEntries(req.query) : await readJsonBody(req.raw)
    let result: unknown
    if (method === 'hello') result = this.control.hello(params)
    else if (method === 'unwatch') {
      if (typeof params.watch !== 'number') throw new KitsyncError('INVALID_ARGUMENT', 'watch must be the number of an event stream')
      this.streams.get(params.watch)?.abort()
      result = true
    } else result = await this.control.call({ id: 0, method, params })
    sendJson(res, 200, { result })
  }

  /**
   * GET /api/v1/events (and /api/v1/watch): `watching` with the stream's id, then the change
   * events of `collection` (every collection without it), and with `sync=true` the sync events,
   * until the client goes away or `unwatch` ends it.
   */
  private async events(req: HttpRequest, res: ServerResponse): Promise<void> {
    const collection = req.query.get('collection') ?? undefined
    const sync = req.query.get('sync')
    if (sync !== null && sync !== 'true' && sync !== 'false') throw new KitsyncError('INVALID_ARGUMENT', 'sync must be true or false')
    const id = this.nextWatch++
    const stop = new AbortController()
    const write = (text: string): void => {
      if (res.destroyed || res.writableEnded) return
      if (res.writableLength > MAX_STREAM_BACKLOG) {
        log(`event stream ${id}: the client reads too slowly (${res.writableLength} bytes waiting); ending it`)
        stop.abort()
        return
      }
      res.write(text)
    }
    // Subscribed before the answer, so no change after it is missed; a bad param fails here, as JSON.
    this.control.watch(
      id,
      { ...(collection === undefined ? {} : { collection }), sync: sync === 'true' },
      stop.signal,
      (event, data) => write(sseMessage(event, data)),
      (err) => {
        log(`event stream ${id} ended with an error`, err)
        stop.abort()
      },
    )
    this.streams.set(id, stop)
    const ended = new Promise<void>((resolve) => {
      stop.signal.addEventListener('abort', () => resolve(), { once: true })
      req.signal.addEventListener('abort', () => stop.abort(), { once: true })
      if (req.signal.aborted) stop.abort()
    })
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' })
    write(sseComment('kitsync events'))
    write(sseMessage('watching', { watch: id }))
    const keepAlive = setInterval(() => write(sseComment('keep-alive')), this.keepAliveMs)
    try {
      await ended
    } finally {
      clearInterval(keepAlive)
      this.streams.delete(id)
      if (!res.destroyed) res.end()
    }
  }
}
