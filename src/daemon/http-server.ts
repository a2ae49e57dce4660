import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { httpStatusFor, MAX_HTTP_BODY } from '../protocol/http-api.js'
import { LOGIN_PATH, type DashboardSessions } from './dashboard-login.js'

const log = debugLog('daemon:http')

/**
 * The peer's HTTP server, on loopback only (127.0.0.1 and ::1, one port). It does what every
 * request needs before a route sees it: the Host and Origin must be the server's own (a web
 * page on another origin, or a DNS name rebound to 127.0.0.1, is refused with 403), and the
 * bearer token must match (401), or a browser session of the dashboard (its cookie, taken for a
 * one-time code at /login: daemon/dashboard-login.ts), with which a change also needs the
 * server's own Origin or the CSRF header. No CORS headers are ever sent: only the server's own
 * pages may call it. Routes (daemon/http-routes.ts, daemon/dashboard-routes.ts) are looked up by path.
 */
export type HttpHandler = (request: HttpRequest, response: ServerResponse) => Promise<void>

export interface HttpRequest {
  readonly raw: IncomingMessage
  readonly method: string
  /** The path, without the query. */
  readonly path: string
  readonly query: URLSearchParams
  /** Aborted when the client goes away (an event stream ends with it). */
  readonly signal: AbortSignal
}

/** What the server routes: a handler for an exact path, or for every path under a prefix ending in '/'. */
export interface HttpRoutes {
  find(path: string): HttpHandler | undefined
}

export interface HttpServerOptions {
  /** 0: a port the OS chooses. */
  port: number
  /** When `port` is taken: take an OS-chosen one instead (the default port), or fail with PORT_IN_USE (a port the user set). */
  fallback: boolean
  token: string
  routes: HttpRoutes
  /** Browser sessions (the dashboard): /login takes a code for a cookie that stands in for the token. */
  sessions?: DashboardSessions
}

/** Requests that change nothing; any other verb made with a session cookie needs the CSRF check. */
const SAFE_METHODS = new Set(['GET', 'HEAD'])
/** The header the dashboard's pages send with every change (a cross-site form cannot send one). */
export const CSRF_HEADER = 'x-kitsync-csrf'

/** Connections each of the two listeners takes at once (a dashboard needs a few, a script one). */
const MAX_CONNECTIONS = 256

export class HttpServer {
  private readonly servers: Server[] = []
  private readonly sockets = new Set<Socket>()
  private readonly tokenDigest: Buffer
  private allowedHosts = new Set<string>()
  private allowedOrigins = new Set<string>()
  private closed = false
  port = 0

  private constructor(private readonly options: HttpServerOptions) {
    this.tokenDigest = digest(options.token)
  }

  static async listen(options: HttpServerOptions): Promise<HttpServer> {
    const server = new HttpServer(options)
    try {
      await server.bind(options.port)
      return server
    } catch (err) {
      if ((options.port !== 0 && !options.fallback) || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw portError(err, options.port)
      log(`HTTP port ${options.port} is taken; using one the OS chooses`)
    }
    // A port the OS chose for 127.0.0.1 may be another process's on ::1: a few more tries.
    for (let attempt = 1; ; attempt++) {
      try {
        await server.bind(0)
        return server
      } catch (err) {
        if (attempt >= 3 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw portError(err, 0)
      }
    }
  }

  /** The URL clients use (the IPv4 address: every system has it). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/`
  }

  /** Listen on 127.0.0.1, then on ::1 with the same port (skipped where the system has no IPv6). */
  private async bind(port: number): Promise<void> {
    const v4 = await this.listenOn('127.0.0.1', port)
    this.port = (v4.address() as { port: number }).port
    try {
      await this.listenOn('::1', this.port)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT') {
        log(`no IPv6 loopback here (${code}); serving HTTP on 127.0.0.1 only`)
      } else {
        await this.closeServers()
        throw err
      }
    }
    const names = [`127.0.0.1:${this.port}`, `localhost:${this.port}`, `[::1]:${this.port}`]
    this.allowedHosts = new Set(names)
    this.allowedOrigins = new Set(names.map((n) => `http://${n}`))
  }

  private listenOn(host: '127.0.0.1' | '::1', port: number): Promise<Server> {
    const server = createServer((req, res) => void this.handle(req, res))
    // A request's headers must come within 10 s; a request itself (and an event stream) may last.
    server.headersTimeout = 10_000
    server.requestTimeout = 0
    // Any local user can connect to a loopback port (not only the token's owner): bounded.
    server.maxConnections = MAX_CONNECTIONS
    server.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
    })
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host, port, ipv6Only: host === '::1', exclusive: true }, () => {
        server.off('error', reject)
        server.on('error', (err) => log(`HTTP server on ${host}`, err))
        this.servers.push(server)
        resolve(server)
      })
    })
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const stop = new AbortController()
    res.once('close', () => stop.abort())
    try {
      if (this.closed) throw new KitsyncError('PEER_NOT_RUNNING', 'the peer is stopping')
      const host = req.headers.host
      if (host === undefined || !this.allowedHosts.has(host.toLowerCase())) {
        throw new KitsyncError('PERMISSION_DENIED', `refused: Host ${JSON.stringify(host ?? '')} is not this server (use ${this.url})`)
      }
      const origin = req.headers.origin
      if (origin !== undefined && !this.allowedOrigins.has(origin.toLowerCase())) {
        throw new KitsyncError('PERMISSION_DENIED', `refused: requests from origin ${JSON.stringify(origin)} are not allowed`)
      }
      const url = new URL(req.url ?? '/', 'http://localhost')
      const sessions = this.options.sessions
      if (sessions !== undefined && url.pathname === LOGIN_PATH) return login(sessions, this.port, req, url, res)
      if (!this.authorized(req.headers.authorization)) {
        if (sessions === undefined || !sessions.check(req.headers.cookie, this.port)) {
          res.setHeader('WWW-Authenticate', 'Bearer realm="kitsync"')
          throw new KitsyncError(
            'UNAUTHENTICATED',
            'this needs Authorization: Bearer TOKEN (kitsync dashboard --json prints the token), or a browser session (kitsync dashboard opens one)',
          )
        }
        // CSRF: a session cookie rides along with any same-site request (another port of 127.0.0.1
        // is same-site), so a change needs this server's own Origin (checked above) or a header
        // no cross-site form can send.
        if (!SAFE_METHODS.has(req.method ?? 'GET') && origin === undefined && req.headers[CSRF_HEADER] === undefined) {
          throw new KitsyncError('PERMISSION_DENIED', `refused: a change made with the browser session needs this server's Origin or the ${CSRF_HEADER} header`)
        }
      }
      const handler = this.options.routes.find(url.pathname)
      if (handler === undefined) throw new KitsyncError('NOT_FOUND', `nothing at ${url.pathname}`)
      await handler({ raw: req, method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, signal: stop.signal }, res)
    } catch (err) {
      sendError(res, err)
    }
  }

  /** Constant-time: the digests of the two tokens are compared, so neither length nor content leaks by timing. */
  private authorized(header: string | undefined): boolean {
    const match = /^Bearer +(\S+) *$/i.exec(header ?? '')
    const given = digest(match?.[1] ?? '')
    return timingSafeEqual(given, this.tokenDigest) && match !== null
  }

  private async closeServers(): Promise<void> {
    const servers = this.servers.splice(0)
    for (const socket of this.sockets) socket.destroy()
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }

  /** Stop listening and end every open request and event stream. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    await this.closeServers()
  }
}

/**
 * GET /login?code=CODE: a valid code is traded for a session cookie and a redirect to the
 * dashboard, so the code leaves the address bar (and the history); anything else is 401.
 */
function login(sessions: DashboardSessions, port: number, req: IncomingMessage, url: URL, res: ServerResponse): void {
  if (req.method !== 'GET') {
    res.setHeader('Allow', 'GET')
    throw new MethodNotAllowed(`${LOGIN_PATH} takes GET, not ${req.method ?? '?'}`)
  }
  const session = sessions.redeem(url.searchParams.get('code') ?? '')
  if (session === undefined) {
    throw new KitsyncError('UNAUTHENTICATED', 'this login link was used already or has expired: run kitsync dashboard again for a new one')
  }
  res.writeHead(303, { Location: '/', 'Set-Cookie': sessions.cookie(session, port), 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' })
  res.end()
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

function portError(err: unknown, port: number): KitsyncError {
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    return new KitsyncError(
      'PORT_IN_USE',
      `the HTTP port 127.0.0.1:${port} is in use by another process: choose another with --http-port N (0: any free port), or --no-http`,
      {
        cause: err,
      },
    )
  }
  return toKitsyncError(err)
}

/**
 * A request with an HTTP verb its path does not take: 405, the transport's refusal and the one
 * status outside HTTP_STATUS (its code, CONTROL_PROTOCOL, is otherwise 400).
 */
export class MethodNotAllowed extends KitsyncError {
  constructor(message: string) {
    super('CONTROL_PROTOCOL', message)
  }
}

/** Send a JSON body with `status`. No CORS headers: same origin only. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' })
  res.end(text)
}

/** `{"error": {"code", "message"}}` with the status of its code (protocol/http-api.ts). */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = toKitsyncError(err)
  if (e.code === 'INTERNAL') log('HTTP request failed', err)
  // A body refused half-read: the rest is not read, so the connection cannot carry another request.
  if (e.code === 'RECORD_TOO_LARGE' && !res.headersSent) res.setHeader('Connection', 'close')
  if (res.headersSent) {
    res.destroy() // an event stream already under way: the client sees it end
    return
  }
  sendJson(res, e instanceof MethodNotAllowed ? 405 : httpStatusFor(e.code), { error: e.toJSON() })
}

/**
 * The request body as a JSON object: empty is `{}`; over MAX_HTTP_BODY bytes is refused before
 * it is all read (RECORD_TOO_LARGE, 413); anything but a JSON object is INVALID_ARGUMENT.
 */
export async function readJsonBody(req: IncomingMessage, max = MAX_HTTP_BODY): Promise<Record<string, unknown>> {
  const tooLarge = (): KitsyncError => new KitsyncError('RECORD_TOO_LARGE', `the request body is larger than ${max} bytes`)
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > max) {
    req.resume() // not read: the connection is closed after the answer
    throw tooLarge()
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > max) throw tooLarge()
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new KitsyncError('INVALID_ARGUMENT', `the request body is not valid JSON: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new KitsyncError('INVALID_ARGUMENT', 'the request body must be a JSON object of params')
  return value as Record<string, unknown>
}
