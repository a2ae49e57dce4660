import { KitsyncError } from '../core/errors.js'

/**
 * The local control API of a running peer: JSON lines over a Unix socket (0600) in the home
 * folder. Every message is one JSON object followed by "\n".
 *
 *   client -> peer   {"id": 1, "method": "set", "params": {...}}
 *   peer -> client   {"id": 1, "result": ...}  or  {"id": 1, "error": {"code": "...", "message": "..."}}
 *   peer -> client   {"event": "change", "data": {...}}      (after a "watch" request)
 *
 * The first request must be `hello` with the client's protocol number (and version, if it
 * is kitsync itself); the peer answers with its own, and refuses other requests before it.
 * docs/CONTROL-API.md documents every method.
 */
export const CONTROL_PROTOCOL = 1

/** Longest line either side accepts; a record is at most a few MiB of JSON. */
export const MAX_CONTROL_LINE = 64 * 1024 * 1024

export const CONTROL_METHODS = [
  'hello',
  'info',
  'get',
  'getAll',
  'set',
  'delete',
  'list',
  'export',
  'exportGit',
  'importRecords',
  'status',
  'watch',
  'unwatch',
  'pair',
  'join',
  'peers',
  'devices',
  'revoke',
  'log',
  'approve',
  'add',
  'remove',
  'append',
  'collection',
  'configure',
  'conflicts',
  'resolve',
  'history',
  'restore',
  'items',
  'setItems',
  'fetch',
  'syncNow',
  'pause',
  'resume',
  'stats',
  'reset',
  'check',
  'folderAdd',
  'folderList',
  'folderStatus',
  'folderRemove',
  'folderHistory',
  'folderRestore',
  'folderSet',
] as const
export type ControlMethod = (typeof CONTROL_METHODS)[number]

export interface ControlRequest {
  id: number
  method: ControlMethod
  params?: Record<string, unknown>
}

export interface ControlResponse {
  id: number
  result?: unknown
  error?: { code: string; message: string; details?: Record<string, unknown> }
}

export interface ControlEvent {
  event: string
  data: unknown
}

export interface HelloParams {
  protocol: number
  version?: string
}

export interface HelloResult {
  protocol: number
  version: string
  pid: number
}

export function encodeMessage(message: ControlRequest | ControlResponse | ControlEvent): string {
  return JSON.stringify(message) + '\n'
}

export function parseRequest(line: string): ControlRequest {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    throw new KitsyncError('CONTROL_PROTOCOL', 'request is not valid JSON')
  }
  if (typeof value !== 'object' || value === null) throw new KitsyncError('CONTROL_PROTOCOL', 'request is not a JSON object')
  const { id, method, params } = value as Record<string, unknown>
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) throw new KitsyncError('CONTROL_PROTOCOL', 'request lacks a numeric id')
  if (typeof method !== 'string' || !(CONTROL_METHODS as readonly string[]).includes(method)) {
    throw new KitsyncError('CONTROL_PROTOCOL', `unknown method ${JSON.stringify(method)}`, { details: { id } })
  }
  if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
    throw new KitsyncError('CONTROL_PROTOCOL', 'params must be an object', { details: { id } })
  }
  return params === undefined ? { id, method: method as ControlMethod } : { id, method: method as ControlMethod, params: params as Record<string, unknown> }
}

export function parseServerMessage(line: string): ControlResponse | ControlEvent {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    throw new KitsyncError('CONTROL_PROTOCOL', 'the peer sent a line that is not JSON')
  }
  if (typeof value !== 'object' || value === null) throw new KitsyncError('CONTROL_PROTOCOL', 'the peer sent a message that is not an object')
  const v = value as Record<string, unknown>
  if (typeof v.event === 'string') return { event: v.event, data: v.data }
  if (typeof v.id === 'number') return v as unknown as ControlResponse
  throw new KitsyncError('CONTROL_PROTOCOL', 'the peer sent a message without id or event')
}

/** Splits a byte stream into lines, refusing any line longer than `max` bytes. */
export class LineSplitter {
  private parts: Buffer[] = []
  private size = 0
  constructor(private readonly max = MAX_CONTROL_LINE) {}

  push(chunk: Buffer): string[] {
    const lines: string[] = []
    let start = 0
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl)
      this.check(piece.byteLength)
      this.parts.push(piece)
      lines.push(Buffer.concat(this.parts).toString('utf8'))
      this.parts = []
      this.size = 0
      start = nl + 1
    }
    if (start < chunk.byteLength) {
      const rest = chunk.subarray(start)
      this.check(rest.byteLength)
      this.parts.push(rest)
      this.size += rest.byteLength
    }
    return lines
  }

  private check(extra: number): void {
    if (this.size + extra > this.max) throw new KitsyncError('CONTROL_PROTOCOL', `control message longer than ${this.max} bytes`)
  }
}
