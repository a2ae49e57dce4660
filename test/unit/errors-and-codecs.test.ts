import { readFileSync } from 'node:fs'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import * as varint from 'uint8-varint'
import { describe, expect, it } from 'vitest'
import { shouldCompact, DEFAULT_COMPACTION } from '../../src/core/compaction-policy.js'
import { ERROR_CODES, exitCodeFor, KitsyncError } from '../../src/core/errors.js'
import { assertJsonValue, parseJson } from '../../src/core/json.js'
import { assertCollectionName } from '../../src/core/names.js'
import { KITSYNC_VERSION } from '../../src/core/version.js'
import { LineSplitter, parseRequest } from '../../src/protocol/control.js'
import { uint16Length, varintLength } from '../../src/net/length-prefix.js'
import { frame, unframe } from '../../src/store/framing.js'
import {
  decodeFrame,
  encodeFrame,
  encodeFrameParts,
  FrameType,
  OLD_SYNC_REFUSAL,
  SyncStep,
  SYNC_PROTOCOL_ID,
  type Frame,
} from '../../src/protocol/sync-frames.js'
import { decodePlaintext, encodePlaintext } from '../../src/blind/blind-envelope.js'

describe('errors', () => {
  it('maps every code to a non-zero exit status and survives a JSON round trip', () => {
    for (const code of Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]) {
      const err = new KitsyncError(code, 'm', { details: { collection: 'c' } })
      expect(exitCodeFor(err)).toBeGreaterThan(0)
      const back = KitsyncError.fromJSON(JSON.parse(JSON.stringify(err)))
      expect(back.code).toBe(code)
      expect(back.details.collection).toBe('c')
    }
    expect(exitCodeFor(new Error('x'))).toBe(1)
    expect(KitsyncError.fromJSON({ code: 'NOPE', message: 'x' }).code).toBe('CONTROL_PROTOCOL')
  })

  it('keeps the version constant equal to package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    expect(KITSYNC_VERSION).toBe(pkg.version)
  })
})

describe('input validation', () => {
  it('parses JSON or fails with INVALID_JSON', () => {
    expect(parseJson('{"a":1}')).toEqual({ a: 1 })
    expect(parseJson('"s"')).toBe('s')
    expect(() => parseJson('{bad')).toThrow(expect.objectContaining({ code: 'INVALID_JSON' }))
  })

  it('accepts only plain JSON values', () => {
    expect(() => assertJsonValue({ a: [1, 'x', null, { b: true }] })).not.toThrow()
    expect(() => assertJsonValue({ a: undefined })).toThrow(/not a JSON value/)
    expect(() => assertJsonValue(NaN)).toThrow(/finite/)
    expect(() => assertJsonValue(new Date())).toThrow(/plain object/)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    expect(() => assertJsonValue(cyclic)).toThrow(/cycle/)
    // The error names where the bad part is; a value seen twice (not a cycle) is fine.
    expect(() => assertJsonValue({ a: [1, { b: () => 1 }] })).toThrow('value.a[1].b is not a JSON value (function)')
    const shared = { x: 1 }
    expect(() => assertJsonValue({ p: shared, q: [shared, shared] })).not.toThrow()
    // A key JSON.parse makes an own property, but no stored object could keep.
    expect(() => assertJsonValue(JSON.parse('{"a":{"__proto__":{"x":1}}}'))).toThrow('value.a has a key named __proto__, which cannot be stored')
    expect(() => assertJsonValue({ constructor: 1, toString: 'x' })).not.toThrow()
  })

  it('checks values nested deeper than its allocation-free pass, cycles and bad parts included', () => {
    const nest = (depth: number, leaf: unknown): unknown => {
      let v = leaf
      for (let i = 0; i < depth; i++) v = i % 2 === 0 ? { d: v } : [v]
      return v
    }
    expect(() => assertJsonValue(nest(200, 'ok'))).not.toThrow()
    expect(() => assertJsonValue(nest(200, undefined))).toThrow(/not a JSON value/)
    expect(() => assertJsonValue(nest(31, new Map()))).toThrow(/plain object/)
    expect(() => assertJsonValue(nest(40, new Map()))).toThrow(/plain object/)
    const deepCycle: Record<string, unknown> = {}
    deepCycle.down = nest(50, deepCycle)
    expect(() => assertJsonValue(deepCycle)).toThrow(/cycle/)
  })

  it('accepts collection names of letters, digits, dot, dash and underscore', () => {
    for (const ok of ['a', 'watchlists', 'ssh-profiles', 'v1.2_x']) expect(() => assertCollectionName(ok)).not.toThrow()
    for (const bad of ['', '-a', 'a/b', 'a!b', 'x'.repeat(65), 'ä']) expect(() => assertCollectionName(bad)).toThrow(/invalid collection name/)
  })
})

describe('compaction policy', () => {
  const base = { snapshotBytes: 0, logBytes: 0, logEntries: 0, oldestEntryAt: undefined }
  it('triggers on bytes relative to the snapshot, and on age', () => {
    const p = { ...DEFAULT_COMPACTION, minBytes: 100, ratio: 1, maxAgeMs: 1000 }
    expect(shouldCompact(p, base, 0)).toBe(false)
    expect(shouldCompact(p, { ...base, logEntries: 1, logBytes: 101, oldestEntryAt: 0 }, 0)).toBe(true)
    expect(shouldCompact(p, { ...base, logEntries: 1, logBytes: 101, snapshotBytes: 500, oldestEntryAt: 0 }, 10)).toBe(false)
    expect(shouldCompact(p, { ...base, logEntries: 1, logBytes: 501, snapshotBytes: 500, oldestEntryAt: 0 }, 10)).toBe(true)
    expect(shouldCompact(p, { ...base, logEntries: 1, logBytes: 1, oldestEntryAt: 0 }, 999)).toBe(false)
    expect(shouldCompact(p, { ...base, logEntries: 1, logBytes: 1, oldestEntryAt: 0 }, 1000)).toBe(true)
  })
})

describe('store framing', () => {
  it('detects any damaged byte', () => {
    const framed = frame(new Uint8Array([1, 2, 3, 4, 5]))
    expect(unframe(framed)).toEqual(new Uint8Array([1, 2, 3, 4, 5]))
    for (let i = 0; i < framed.length; i++) {
      const damaged = framed.slice()
      damaged[i] = (damaged[i] as number) ^ 0x40
      expect(unframe(damaged)).toBeUndefined()
    }
    expect(unframe(new Uint8Array([1, 0]))).toBeUndefined()
  })
})

describe('sync frames as parts', () => {
  it('gives a SYNC frame as its header and its payload itself, which together are the frame', () => {
    const payload = new Uint8Array(300_000).fill(7)
    const f = { type: FrameType.SYNC, collection: 'notes', step: SyncStep.STEP2, payload } as const
    const parts = encodeFrameParts(f)
    expect(parts).toHaveLength(2)
    // Not a copy: the payload goes to the link as it is.
    expect(parts[1]).toBe(payload)
    expect(Buffer.concat(parts)).toEqual(Buffer.from(encodeFrame(f)))
    expect(decodeFrame(Buffer.concat(parts))).toMatchObject({ type: FrameType.SYNC, collection: 'notes', step: SyncStep.STEP2 })
    const hello: Frame = { type: FrameType.HELLO, version: 1, workspaceId: 'w', collections: ['a'] }
    expect(encodeFrameParts(hello)).toEqual([encodeFrame(hello)])
  })
})

describe('versions of sync 2', () => {
  it('speaks /kitsync/sync/2.0.0 and refuses 1.0.0 with one VERSION_MISMATCH frame', () => {
    expect(SYNC_PROTOCOL_ID).toBe('/kitsync/sync/2.0.0')
    expect(decodeFrame(encodeFrame(OLD_SYNC_REFUSAL))).toEqual({
      type: FrameType.ERROR,
      code: 'VERSION_MISMATCH',
      message: 'this device speaks sync 2; update kitsync',
    })
  })

  it('writes blind plaintext version 2 (which a sync-1 device refuses) and still reads version 1', () => {
    const items = [{ collection: 'notes', update: new Uint8Array([1, 2, 3]) }]
    const v2 = encodePlaintext(items)
    // A sync-1 device reads only version 1: the first byte is what makes it refuse.
    expect(v2[0]).toBe(2)
    expect(decodePlaintext(v2)).toEqual(items)
    const v1 = new Uint8Array(v2)
    v1[0] = 1
    expect(decodePlaintext(v1)).toEqual(items)
    // Version 3 (units and blobs) is read since sync 3 (test/unit/blind-envelope-v3.test.ts); the next one is refused.
    const v4 = new Uint8Array(v2)
    v4[0] = 4
    expect(() => decodePlaintext(v4)).toThrow(/unknown version/)
  })
})

describe('control protocol codec', () => {
  it('splits lines across chunks and refuses over-long lines', () => {
    const s = new LineSplitter(10)
    expect(s.push(Buffer.from('ab'))).toEqual([])
    expect(s.push(Buffer.from('c\nde\n'))).toEqual(['abc', 'de'])
    expect(() => s.push(Buffer.from('x'.repeat(11)))).toThrow(/longer than 10 bytes/)
  })

  it('refuses malformed requests with CONTROL_PROTOCOL', () => {
    expect(parseRequest('{"id":1,"method":"get","params":{"collection":"a"}}').method).toBe('get')
    for (const bad of ['nope', '[]', '{"method":"get"}', '{"id":1,"method":"drop"}', '{"id":1,"method":"get","params":[]}']) {
      expect(() => parseRequest(bad)).toThrow(expect.objectContaining({ code: 'CONTROL_PROTOCOL' }))
    }
  })
})

describe('utf8Length', () => {
  it('matches TextEncoder for ASCII, 2-, 3- and 4-byte characters', async () => {
    const { utf8Length } = await import('../../src/core/json.js')
    for (const s of ['', 'abc', 'é', 'ü€', '日本語', '😀', 'a😀b€é', '\u07ff\u0800\uffff']) {
      expect(utf8Length(s)).toBe(new TextEncoder().encode(s).byteLength)
    }
  })
})

describe('length prefixes', () => {
  /** Every frame of `wire`, fed to `decoder` one byte at a time. */
  const byteByByte = (decoder: LengthPrefixedDecoder, wire: Uint8Array): Buffer[] => {
    const out: Buffer[] = []
    for (let i = 0; i < wire.byteLength; i++) for (const f of decoder.decode(wire.subarray(i, i + 1))) out.push(Buffer.from(f.subarray()))
    return out
  }

  it('reads varint-prefixed frames split at every byte, without an exception for a prefix not yet whole, and refuses an endless prefix', () => {
    const frames = [new Uint8Array(0x3fff + 5).fill(7), Uint8Array.of(1, 2, 3), new Uint8Array(200).fill(9)]
    const wire = Buffer.concat(frames.flatMap((f) => [varint.encode(f.byteLength), f]))
    // The prefix of the first frame (3 bytes) is incomplete twice.
    expect(byteByByte(new LengthPrefixedDecoder({ maxDataLength: 1 << 20, lengthDecoder: varintLength }), wire)).toEqual(frames.map((f) => Buffer.from(f)))
    // (The decoder hands the readers its Uint8ArrayList.) "Not yet": the bytes held, so that
    // prefix plus data is more than the decoder holds.
    expect(varintLength(new Uint8Array(0))).toBe(0)
    expect(varintLength(Uint8Array.of(0x80, 0x80))).toBe(2)
    // A prefix that never ends is the varint reader's RangeError (the decoder waits), until
    // the read buffer's limit refuses the stream.
    expect(() => varintLength(new Uint8Array(12).fill(0xff))).toThrow(RangeError)
    const endless = new LengthPrefixedDecoder({ maxBufferSize: 64, lengthDecoder: varintLength })
    expect([...endless.decode(new Uint8Array(60).fill(0xff))]).toEqual([])
    expect(() => [...endless.decode(new Uint8Array(8).fill(0xff))]).toThrow(/limit/)
  })

  it("reads Noise's 2-byte prefixes split at every byte, without an exception", () => {
    const frames = [new Uint8Array(0xffff).fill(5), Uint8Array.of(1), new Uint8Array(300).fill(8), new Uint8Array(0x100).fill(3)]
    const wire = Buffer.concat(frames.flatMap((f) => [Uint8Array.of(f.byteLength >> 8, f.byteLength & 0xff), f]))
    const decoder = new LengthPrefixedDecoder({ maxDataLength: 0xffff, maxBufferSize: 1 << 20, lengthDecoder: uint16Length, encodingLength: () => 2 })
    expect(byteByByte(decoder, wire)).toEqual(frames.map((f) => Buffer.from(f)))
    expect(uint16Length(new Uint8Array(0))).toBe(0)
    expect(uint16Length(Uint8Array.of(0x12))).toBe(1)
    expect(uint16Length(Uint8Array.of(0x12, 0x34, 0x56))).toBe(0x1234)
  })
})
