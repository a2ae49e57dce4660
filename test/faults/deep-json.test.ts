import { createConnection } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { KITSYNC_VERSION } from '../../src/core/version.js'
import { openWorkspace } from '../../src/api/open-workspace.js'
import { isKitsyncError } from '../../src/core/errors.js'
import { assertJsonValue, MAX_JSON_DEPTH, parseJson } from '../../src/core/json.js'
import { cleanup, expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, startPeer, stopProc } from '../helpers/cli.js'

/**
 * Issue 19, item 15b: JSON nested deeper than the stack allows failed with `INTERNAL: Maximum
 * call stack size exceeded` (the checks and the encoders recurse). Values are now refused
 * past a documented depth, 256 levels of arrays and objects, with INVALID_ARGUMENT (exit 2).
 */

afterAll(cleanup)

function nestedArray(depth: number): unknown {
  let v: unknown = 1
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

function nestedObject(depth: number): unknown {
  let v: unknown = 1
  for (let i = 0; i < depth; i++) v = { a: v }
  return v
}

function errorOf(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

describe('the nesting depth of a value', () => {
  it('is 256 levels', () => {
    expect(MAX_JSON_DEPTH).toBe(256)
  })

  it.each([
    ['arrays', nestedArray],
    ['objects', nestedObject],
  ])('accepts %s nested 256 deep and refuses 257 and 100,000 deep with INVALID_ARGUMENT', (_what, make) => {
    expect(() => assertJsonValue(make(256))).not.toThrow()
    for (const depth of [257, 100_000]) {
      const err = errorOf(() => assertJsonValue(make(depth)))
      expect(isKitsyncError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true)
      expect((err as Error).message).toMatch(/nested deeper than 256 levels/)
    }
  })

  it('finds a value too deep behind a part that is not JSON, and names the first problem', () => {
    const err = errorOf(() => assertJsonValue([nestedArray(100_000), undefined]))
    expect(isKitsyncError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true)
    const bad = errorOf(() => assertJsonValue([Symbol('x'), nestedArray(100_000)]))
    expect(isKitsyncError(bad, 'INVALID_ARGUMENT'), String(bad)).toBe(true)
  })

  it('parseJson refuses deep text with INVALID_ARGUMENT', () => {
    const text = '['.repeat(100_000) + ']'.repeat(100_000)
    const err = errorOf(() => parseJson(text, 'the record'))
    expect(isKitsyncError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true)
    expect((err as Error).message).toMatch(/^the record is nested deeper than 256 levels/)
    expect(parseJson('['.repeat(256) + ']'.repeat(256))).toBeDefined()
    expect(() => parseJson('['.repeat(257) + ']'.repeat(257))).toThrow(/nested deeper/)
  })

  it('a workspace refuses a deep record and keeps the store as it was (LevelDB in a temp home)', async () => {
    const home = await makeHome()
    const ws = await openWorkspace({ home, mode: 'local', serve: false })
    await ws.set('c', 'ok', nestedArray(256) as never)
    const err = await ws.set('c', 'deep', nestedObject(5_000) as never).catch((e: unknown) => e)
    expect(isKitsyncError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true)
    expect(Object.keys(await ws.getAll('c'))).toEqual(['ok'])
    await ws.close()
  })
})

/** Send request lines to a control socket; resolves with one parsed answer per request. */
function rawControl(path: string, lines: string[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    const answers: unknown[] = []
    let buffered = ''
    const timer = setTimeout(() => reject(new Error(`no answer to ${lines.length} requests within 10 s: ${JSON.stringify(answers)}`)), 10_000)
    socket.on('error', reject)
    socket.on('data', (chunk: Buffer) => {
      const parts = (buffered + chunk.toString('utf8')).split('\n')
      buffered = parts.pop() ?? ''
      for (const part of parts) answers.push(JSON.parse(part) as unknown)
      if (answers.length >= lines.length) {
        clearTimeout(timer)
        socket.end()
        resolve(answers)
      }
    })
    socket.on('connect', () => socket.write(lines.map((l) => l + '\n').join('')))
  })
}

describe('the CLI with deep JSON', () => {
  it('set refuses it with INVALID_ARGUMENT and exit 2, without a peer and through one; so does the control socket', async () => {
    const home = await makeHome()
    const deep = '['.repeat(5_000) + ']'.repeat(5_000)
    expect(expectCliError(await kitsync(home, ['set', 'c', 'k', deep]), 'INVALID_ARGUMENT', 2)).toMatch(/nested deeper than 256 levels/)
    // From stdin, as the control socket's client would send it on.
    const peer = await startPeer(home)
    expectCliError(await kitsync(home, ['set', 'c', 'k', '-'], { input: '{"a":'.repeat(200_000) + '1' + '}'.repeat(200_000) }), 'INVALID_ARGUMENT', 2)
    // A client of the control socket that sends the text as it is (no check on its side).
    const answers = await rawControl(peer.started.socket, [
      JSON.stringify({ id: 1, method: 'hello', params: { protocol: 1, version: KITSYNC_VERSION } }),
      `{"id":2,"method":"set","params":{"collection":"c","key":"k","value":${'['.repeat(50_000) + ']'.repeat(50_000)}}}`,
    ])
    expect(answers[1]).toEqual({ id: 2, error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/nested deeper than 256 levels/) } })
    await kitsyncOk(home, ['set', 'c', 'ok', '['.repeat(256) + ']'.repeat(256)])
    expect(Object.keys(await kitsyncJson<Record<string, unknown>>(home, ['get', 'c']))).toEqual(['ok'])
    expect(await stopProc(peer.proc)).toEqual({ code: 0, signal: null })
  })
})
