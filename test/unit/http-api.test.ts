import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ERROR_CODES } from '../../src/core/errors.js'
import { KITSYNC_VERSION } from '../../src/core/version.js'
import { CONTROL_METHODS } from '../../src/protocol/control.js'
import { DEFAULT_HTTP_PORT, HTTP_STATUS, httpVerbs, methodOfPath, READ_ONLY_METHODS, sseComment, sseMessage } from '../../src/protocol/http-api.js'
import { buildOpenApi } from '../../src/protocol/http-openapi.js'
import { httpPortFor } from '../../src/daemon/peer-http.js'
import { REPO_ROOT } from '../helpers/cli.js'

describe('the HTTP API table', () => {
  it('docs/openapi.json is the document the peer serves (npm run openapi rewrites it)', async () => {
    const file = await readFile(join(REPO_ROOT, 'docs', 'openapi.json'), 'utf8')
    expect(file === JSON.stringify(buildOpenApi(KITSYNC_VERSION), null, 2) + '\n', 'docs/openapi.json is not what the peer serves: run npm run openapi').toBe(
      true,
    )
  })

  it.each(CONTROL_METHODS)('the control method %s has a path, with its verbs, in the OpenAPI document', (method) => {
    const paths = buildOpenApi(KITSYNC_VERSION).paths as Record<string, Record<string, { operationId: string }>>
    const ops = paths[`/api/v1/${method}`]
    expect(ops).toBeDefined()
    expect(Object.keys(ops ?? {}).sort()).toEqual(
      httpVerbs(method)
        .map((v) => v.toLowerCase())
        .sort(),
    )
    expect(methodOfPath(`/api/v1/${method}`)).toBe(method)
  })

  it('gives a method added to the table a path of its own, POST with a generic body, without a description', () => {
    const paths = buildOpenApi(KITSYNC_VERSION, [...CONTROL_METHODS, 'history']).paths as Record<
      string,
      Record<string, { operationId: string; summary: string }>
    >
    expect(Object.keys(paths['/api/v1/history'] ?? {})).toEqual(['post'])
    expect(paths['/api/v1/history']?.post).toMatchObject({ operationId: 'history', summary: expect.stringContaining('history') as string })
  })

  it('only methods that read are served by GET, and watch only by GET', () => {
    for (const m of ['set', 'delete', 'revoke', 'pair', 'join', 'reset', 'resolve', 'configure', 'setItems', 'unwatch', 'hello'] as const) {
      expect(READ_ONLY_METHODS.has(m)).toBe(false)
      expect(httpVerbs(m)).toEqual(['POST'])
    }
    expect(httpVerbs('get')).toEqual(['GET', 'POST'])
    expect(httpVerbs('watch')).toEqual(['GET'])
    expect(methodOfPath('/api/v1/constructor')).toBeUndefined()
    expect(methodOfPath('/api/v1/')).toBeUndefined()
  })

  it('gives every error code an error status', () => {
    expect(Object.keys(HTTP_STATUS).sort()).toEqual(Object.keys(ERROR_CODES).sort())
    for (const [code, status] of Object.entries(HTTP_STATUS)) expect(status, code).toBeGreaterThanOrEqual(400)
    expect([HTTP_STATUS.UNAUTHENTICATED, HTTP_STATUS.PERMISSION_DENIED, HTTP_STATUS.INVALID_ARGUMENT, HTTP_STATUS.NOT_FOUND, HTTP_STATUS.INTERNAL]).toEqual([
      401, 403, 400, 404, 500,
    ])
  })

  it('writes one SSE message per event, its data on one line, and comments that cannot end early', () => {
    expect(sseMessage('change', { text: 'a\nb\r\n\ndata: x' })).toBe('event: change\ndata: {"text":"a\\nb\\r\\n\\ndata: x"}\n\n')
    expect(sseComment('keep\nalive')).toBe(': keep alive\n\n')
  })

  it('takes the port from the flag, else workspace.json, else the default (with a fallback)', () => {
    expect(httpPortFor(undefined, { port: 9000 })).toBeUndefined() // the library: off unless asked
    expect(httpPortFor(false, { port: 9000 })).toBeUndefined()
    expect(httpPortFor({}, undefined)).toEqual({ port: DEFAULT_HTTP_PORT, fallback: true })
    expect(httpPortFor({}, { port: 9000 })).toEqual({ port: 9000, fallback: false })
    expect(httpPortFor({ port: 0 }, { port: 9000 })).toEqual({ port: 0, fallback: false })
    expect(httpPortFor({}, { enabled: false })).toBeUndefined()
    expect(httpPortFor({ port: 8000 }, { enabled: false })).toEqual({ port: 8000, fallback: false })
    expect(() => httpPortFor({}, { port: 70000 })).toThrow(/http\.port/)
  })
})
