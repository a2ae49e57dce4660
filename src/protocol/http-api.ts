import type { ErrorCode } from '../core/errors.js'
import { CONTROL_METHODS, type ControlMethod } from './control.js'

/**
 * The control API over HTTP on loopback (docs/HTTP-API.md): every method of the control socket
 * (CONTROL_METHODS, the one method table) is `POST /api/v1/METHOD` with its params as a JSON
 * object body, answered with `{"result": ...}` or `{"error": {"code", "message"}}` and the status
 * of HTTP_STATUS. A method added to CONTROL_METHODS is served over HTTP with nothing added here.
 */
export const HTTP_API_PREFIX = '/api/v1/'

/** Server-Sent Events of `watch`: change events, and the sync events with `sync=true`. */
export const EVENTS_PATH = '/api/v1/events'
export const OPENAPI_PATH = '/api/v1/openapi.json'
export const METRICS_PATH = '/metrics'

/** Largest request body: the same bound as a control socket line. */
export { MAX_CONTROL_LINE as MAX_HTTP_BODY } from './control.js'

/** Default HTTP port of the peer (the one after libp2p's 4771); taken: an OS-chosen one. */
export const DEFAULT_HTTP_PORT = 4772

/**
 * Methods that only read: also served as `GET /api/v1/METHOD?param=value` (string params), so
 * `curl` and a browser address bar need no body. Every other method is POST only.
 */
export const READ_ONLY_METHODS: ReadonlySet<ControlMethod> = new Set([
  'info',
  'get',
  'getAll',
  'list',
  'export',
  'status',
  'peers',
  'devices',
  'log',
  'collection',
  'conflicts',
  'items',
  'stats',
])

/**
 * Methods bound to a connection on the socket, served differently over HTTP: `watch` is the
 * event stream (GET, like EVENTS_PATH) and `unwatch` ends one by the id it announced.
 */
export const STREAM_METHODS: ReadonlySet<ControlMethod> = new Set(['watch', 'unwatch'])

/** The HTTP verbs of a method's path. */
export function httpVerbs(method: ControlMethod): ('GET' | 'POST')[] {
  if (method === 'watch') return ['GET']
  return READ_ONLY_METHODS.has(method) ? ['GET', 'POST'] : ['POST']
}

/** The control method of a path under HTTP_API_PREFIX, if it names one. */
export function methodOfPath(path: string): ControlMethod | undefined {
  if (!path.startsWith(HTTP_API_PREFIX)) return undefined
  const name = path.slice(HTTP_API_PREFIX.length)
  return (CONTROL_METHODS as readonly string[]).includes(name) ? (name as ControlMethod) : undefined
}

/**
 * The HTTP status of each error code: one table, so the two APIs cannot disagree on a code and
 * a new code does not compile until it has a status. The codes are the CLI's (core/errors.ts).
 */
export const HTTP_STATUS = {
  INVALID_ARGUMENT: 400,
  UNKNOWN_COMMAND: 400,
  INVALID_JSON: 400,
  INVALID_NAME: 400,
  RECORD_TOO_LARGE: 413,
  UNKNOWN_COLLECTION: 404,
  NOT_FOUND: 404,
  HOME_UNREADABLE: 500,
  PEER_ALREADY_RUNNING: 409,
  PEER_NOT_RUNNING: 503,
  STORE_LOCKED: 503,
  VERSION_MISMATCH: 400,
  PERMISSION_DENIED: 403,
  UNAUTHENTICATED: 401,
  WORKSPACE_EXISTS: 409,
  DATA_CORRUPTION: 500,
  STORAGE_FAILED: 507,
  CONTROL_PROTOCOL: 400,
  CONNECTION_CLOSED: 502,
  ABORTED: 503,
  PEER_STOP_TIMEOUT: 504,
  PROTOCOL_ERROR: 502,
  WORKSPACE_MISMATCH: 409,
  NOT_A_MEMBER: 403,
  RATE_LIMITED: 429,
  PEER_UNREACHABLE: 504,
  PORT_IN_USE: 409,
  SYNC_PAUSED: 409,
  TOKEN_INVALID: 400,
  TOKEN_EXPIRED: 410,
  TOKEN_USED: 409,
  TOKEN_REFUSED: 403,
  DEVICE_LIMIT_EXCEEDED: 409,
  DEVICE_REVOKED: 403,
  UNKNOWN_DEVICE: 404,
  INVALID_RECORD: 422,
  LIMIT_EXCEEDED: 422,
  APPEND_ONLY: 409,
  SECRET_REFUSED: 422,
  PRIVATE_KEY_REFUSED: 422,
  FILE_CHANGED: 409,
  UNKNOWN_CONFLICT: 404,
  CHECK_FAILED: 500,
  GIT_NOT_FOUND: 500,
  GIT_FAILED: 500,
  SERVICE_FAILED: 500,
  INTERNAL: 500,
} as const satisfies Record<ErrorCode, number>

export function httpStatusFor(code: ErrorCode): number {
  return HTTP_STATUS[code]
}

/** One Server-Sent Events message: `event: NAME` and the JSON data on one `data:` line. */
export function sseMessage(event: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so the data is one line.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** An SSE comment (ignored by clients): sent as keep-alive, so proxies and clients see the stream is alive. */
export function sseComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`
}
