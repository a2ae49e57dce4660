import { ERROR_CODES, type ErrorCode } from '../core/errors.js'
import { CONTROL_METHODS, CONTROL_PROTOCOL, type ControlMethod } from './control.js'
import { EVENTS_PATH, HTTP_API_PREFIX, HTTP_STATUS, httpVerbs, METRICS_PATH, OPENAPI_PATH } from './http-api.js'

/**
 * The OpenAPI 3.1 document of the HTTP API, built from the method table (CONTROL_METHODS), so
 * every method has a path. Served at OPENAPI_PATH and kept in docs/openapi.json (a test checks
 * that they are equal; `npm run openapi` rewrites the file). A method without an entry in
 * METHOD_DOCS gets a generic one: params as an object, any JSON as result.
 */
type Schema = Record<string, unknown>

interface MethodDoc {
  summary: string
  /** Params: name -> [JSON schema, required]. */
  params?: Record<string, [Schema, boolean]>
  result?: Schema
}

const str: Schema = { type: 'string' }
const num: Schema = { type: 'number' }
const bool: Schema = { type: 'boolean' }
const any: Schema = {}
const strings: Schema = { type: 'array', items: str }
const obj: Schema = { type: 'object' }
const patternChange: Schema = {
  type: 'object',
  properties: { set: { type: ['array', 'null'], items: str }, add: strings, remove: strings },
  additionalProperties: false,
}
const timeout: [Schema, boolean] = [{ type: 'number', minimum: 1, maximum: 3_600_000, description: 'milliseconds (default 15000)' }, false]

const METHOD_DOCS: Partial<Record<ControlMethod, MethodDoc>> = {
  hello: {
    summary: 'Protocol handshake (optional over HTTP): the peer refuses another protocol number, or another kitsync version if one is given',
    params: { protocol: [{ const: CONTROL_PROTOCOL }, true], version: [str, false] },
    result: { type: 'object', properties: { protocol: num, version: str, pid: num } },
  },
  info: {
    summary: 'This device and its workspace',
    result: { type: 'object', properties: { home: str, deviceId: str, workspaceId: str, name: str, version: str } },
  },
  get: {
    summary: 'One record',
    params: { collection: [str, true], key: [str, true] },
    result: { type: 'object', properties: { found: bool, value: any }, required: ['found'] },
  },
  getAll: { summary: 'Every record of a collection, by key', params: { collection: [str, true] }, result: obj },
  set: {
    summary: 'Write a record (or one field of it); answered once the write is durable',
    params: { collection: [str, true], key: [str, true], value: [any, true], field: [str, false] },
    result: { const: true },
  },
  delete: { summary: 'Delete a record; false if there was none', params: { collection: [str, true], key: [str, true] }, result: bool },
  list: { summary: 'The collections with their sizes and open conflicts', result: { type: 'array', items: obj } },
  export: { summary: 'The whole workspace as an export document (as kitsync export)', result: obj },
  exportGit: {
    summary: 'Write the collections to a git repository (the peer runs the system git)',
    params: { dir: [{ type: 'string', description: 'absolute; the peer writes there' }, true], message: [str, false] },
    result: obj,
  },
  importRecords: {
    summary: 'Import records (and collection settings) from an export',
    params: { source: [{ type: 'object', properties: { collections: obj }, required: ['collections'] }, true], dryRun: [bool, false], prune: [bool, false] },
    result: obj,
  },
  status: { summary: 'The workspace, the peer, the network, and where sync stands per device (state, pending, last sync)', result: obj },
  watch: { summary: 'Server-Sent Events: change events (and the sync events with sync=true), as GET /api/v1/events' },
  unwatch: { summary: 'End an event stream by the id its first event (watching) announced', params: { watch: [num, true] }, result: bool },
  pair: {
    summary: 'Issue a pairing token',
    params: { ttlMs: [num, false], confirm: [bool, false], untrusted: [bool, false] },
    result: obj,
  },
  join: { summary: 'Join the workspace of a pairing token', params: { token: [str, true], name: [str, false], waitMs: [num, false] }, result: obj },
  peers: { summary: 'The devices as the network sees them', result: { type: 'array', items: obj } },
  devices: { summary: 'The devices of the workspace', result: { type: 'array', items: obj } },
  revoke: { summary: 'Revoke a device', params: { device: [str, true], reason: [str, false] }, result: any },
  log: { summary: 'The audit log', result: { type: 'array', items: obj } },
  approve: { summary: 'Approve or refuse a device waiting on a --confirm token', params: { tokenId: [str, true], accept: [bool, true] }, result: bool },
  add: {
    summary: 'Add elements to a set field',
    params: { collection: [str, true], key: [str, true], field: [str, true], elements: [strings, true] },
    result: { const: true },
  },
  remove: {
    summary: 'Remove elements from a set field',
    params: { collection: [str, true], key: [str, true], field: [str, true], elements: [strings, true] },
    result: { const: true },
  },
  append: {
    summary: 'Append an entry to a log collection or a log field',
    params: { collection: [str, true], value: [any, true], key: [str, false], field: [str, false] },
    result: { type: 'object', properties: { key: str } },
  },
  collection: { summary: 'The settings of a collection', params: { name: [str, true] }, result: obj },
  configure: { summary: 'Change the settings of a collection', params: { name: [str, true], change: [obj, true] }, result: obj },
  conflicts: { summary: 'Open conflicts', params: { collection: [str, false] }, result: { type: 'array', items: obj } },
  resolve: {
    summary: 'Resolve a conflict: take a version (its device or stamp) or give the value',
    params: { collection: [str, true], id: [str, true], take: [str, false], value: [any, false] },
    result: obj,
  },
  items: { summary: 'What this device syncs (selective sync)', result: obj },
  setItems: { summary: 'Change what this device syncs', params: { items: [patternChange, false], localOnly: [patternChange, false] }, result: obj },
  fetch: { summary: 'Fetch an on-demand collection from the devices', params: { collection: [str, true], timeoutMs: timeout }, result: obj },
  syncNow: { summary: 'Sync with every device now; what moved, per device', params: { timeoutMs: timeout }, result: obj },
  pause: { summary: 'Pause sync: exchange with no device until resume (or forMs)', params: { forMs: [num, false] }, result: obj },
  resume: { summary: 'Resume sync: dial every device now', result: obj },
  stats: { summary: 'Sync counters per device and per collection', result: obj },
  reset: { summary: 'Reset the sync state (counters, backoff, sessions); never the data', result: obj },
}

const errorSchema: Schema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string', enum: Object.keys(ERROR_CODES) }, message: str, details: obj },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
}

/** The statuses an error can have, each with the codes that map to it. */
function errorResponses(): Record<string, Schema> {
  const byStatus = new Map<number, ErrorCode[]>()
  for (const [code, status] of Object.entries(HTTP_STATUS)) byStatus.set(status, [...(byStatus.get(status) ?? []), code as ErrorCode])
  return Object.fromEntries(
    [...byStatus]
      .sort(([a], [b]) => a - b)
      .map(([status, codes]) => [
        String(status),
        { description: codes.join(', '), content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      ]),
  )
}

function methodPath(method: ControlMethod): Schema {
  const doc = METHOD_DOCS[method] ?? { summary: `The control method ${method} (see docs/CONTROL-API.md)`, params: undefined, result: any }
  const ok = {
    description: 'the result',
    content: { 'application/json': { schema: { type: 'object', properties: { result: doc.result ?? any }, required: ['result'] } } },
  }
  const params = doc.params ?? {}
  const body = {
    type: 'object',
    properties: Object.fromEntries(Object.entries(params).map(([name, [schema]]) => [name, schema])),
    required: Object.entries(params)
      .filter(([, [, required]]) => required)
      .map(([name]) => name),
  }
  const common = { operationId: method, summary: doc.summary, responses: { '200': ok, default: { $ref: '#/components/responses/Error' } } }
  if (method === 'watch') return { get: { ...common, operationId: 'watch', parameters: eventParameters(), responses: eventResponses() } }
  const out: Schema = {}
  for (const verb of httpVerbs(method)) {
    if (verb === 'POST') {
      out.post = { ...common, requestBody: { required: body.required.length > 0, content: { 'application/json': { schema: body } } } }
    } else {
      // A GET takes the string params as query parameters.
      out.get = {
        ...common,
        operationId: `${method}Get`,
        parameters: Object.entries(params).map(([name, [schema, required]]) => ({ name, in: 'query', required, schema })),
      }
    }
  }
  return out
}

function eventParameters(): Schema[] {
  return [
    { name: 'collection', in: 'query', required: false, schema: str, description: 'only the changes of this collection' },
    {
      name: 'sync',
      in: 'query',
      required: false,
      schema: { type: 'string', enum: ['true', 'false'] },
      description: 'also the sync events (sync:*, device:*, pairing:pending)',
    },
  ]
}

function eventResponses(): Schema {
  return {
    '200': {
      description:
        'text/event-stream: first `watching` with {watch: ID}, then `change` events (and the sync events with sync=true), each data one JSON line; a comment every 15 s keeps it alive',
      content: { 'text/event-stream': { schema: str } },
    },
    default: { $ref: '#/components/responses/Error' },
  }
}

/** The document; `methods` is the method table (a test passes one with a method of its own). */
export function buildOpenApi(version: string, methods: readonly string[] = CONTROL_METHODS): Schema {
  const paths: Record<string, Schema> = {}
  for (const method of methods) paths[`${HTTP_API_PREFIX}${method}`] = methodPath(method as ControlMethod)
  paths[EVENTS_PATH] = {
    get: {
      operationId: 'events',
      summary: 'Server-Sent Events of watch (the same stream as GET /api/v1/watch)',
      parameters: eventParameters(),
      responses: eventResponses(),
    },
  }
  paths[OPENAPI_PATH] = {
    get: {
      operationId: 'openapi',
      summary: 'This document',
      responses: { '200': { description: 'the OpenAPI document', content: { 'application/json': { schema: obj } } } },
    },
  }
  paths[METRICS_PATH] = {
    get: {
      operationId: 'metrics',
      summary: 'Prometheus metrics (text exposition format), names prefixed kitsync_',
      responses: { '200': { description: 'metrics', content: { 'text/plain': { schema: str } } }, default: { $ref: '#/components/responses/Error' } },
    },
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'kitsync HTTP API',
      version,
      description:
        "The control API of a running kitsync peer over HTTP on loopback (127.0.0.1 and ::1). Every request needs Authorization: Bearer TOKEN (kitsync dashboard --json prints it); a Host or Origin other than the server's own is refused. Errors carry the codes of the CLI. See docs/HTTP-API.md.",
    },
    servers: [{ url: 'http://127.0.0.1:{port}', variables: { port: { default: '4772' } } }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorSchema },
      responses: {
        Error: {
          description: 'an error: the status by its code (see x-status-by-code)',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    },
    'x-status-by-code': { ...HTTP_STATUS },
    'x-error-statuses': errorResponses(),
  }
}
