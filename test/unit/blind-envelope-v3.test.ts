import { describe, expect, it } from 'vitest'
import * as encoding from 'lib0/encoding'
import { isKitsyncError } from '../../src/core/errors.js'
import { decodePlaintext, encodePlaintext, open, seal, type EnvelopeItem } from '../../src/blind/blind-envelope.js'
import * as older from '../fixtures/blind-envelope-v2.js'

/**
 * Blind plaintext version 3 (docs/PROTOCOL.md, "Blind store"): items of a collection, of a unit
 * (a shared folder's text file) and of a blob (a binary file), read beside versions 1 and 2.
 */

const enc = new TextEncoder()
const KEY = new Uint8Array(32).fill(5)
const ctx = { workspaceId: 'ws', epoch: 2, kind: 'entry' as const }
const HASH = 'ab'.repeat(32)
const UNIT = 'Zm9sZGVyLWZpbGUtaWQtMQ'

const mixed: EnvelopeItem[] = [
  { collection: '_folder.sim', update: enc.encode('manifest scenarios/secret-name.yaml') },
  { kind: 'unit', collection: '_folder.sim', unit: UNIT, update: enc.encode('MARKER unit text') },
  { kind: 'blob', hash: HASH, bytes: new Uint8Array([0, 1, 2, 255, 77]) },
  { collection: 'notes', update: new Uint8Array([9]) },
]

describe('blind plaintext version 3', () => {
  it('round-trips collection, unit and blob items in their order, as version 3', () => {
    const bytes = encodePlaintext(mixed)
    expect(bytes[0]).toBe(3)
    expect(decodePlaintext(bytes)).toEqual(mixed)
  })

  it('writes version 2 when an entry holds collections only: a device that reads up to 2 takes it', () => {
    const items = [{ collection: 'notes', update: new Uint8Array([1, 2, 3]) }]
    const bytes = encodePlaintext(items)
    expect(bytes[0]).toBe(2)
    expect(decodePlaintext(bytes)).toEqual(items)
  })

  it('is refused by a device that reads up to version 2, with its "unknown version" error; entries of collections alone it reads', async () => {
    // The envelope code of such a device (test/fixtures/blind-envelope-v2.ts, as it was before version 3).
    const sealed = await seal(KEY, ctx, mixed)
    await expect(older.open(KEY, ctx, sealed)).rejects.toThrow('a decrypted blind entry does not decode: unknown version')
    await expect(older.open(KEY, ctx, sealed)).rejects.toSatisfy((err: unknown) => isKitsyncError(err, 'PROTOCOL_ERROR'))
    const collectionsOnly = [mixed[0] as { collection: string; update: Uint8Array }]
    expect(await older.open(KEY, ctx, await seal(KEY, ctx, collectionsOnly))).toEqual(collectionsOnly)
    // What it writes, this device reads.
    expect(await open(KEY, ctx, await older.seal(KEY, ctx, collectionsOnly))).toEqual(collectionsOnly)
    // And this device refuses the version after 3 the same way.
    const v4 = encodePlaintext(mixed)
    v4[0] = 4
    expect(() => decodePlaintext(v4)).toThrow(/unknown version/)
    expect(() => decodePlaintext(v4)).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }))
  })

  it('refuses an unknown item kind, a truncated item and trailing bytes', () => {
    const e = encoding.createEncoder()
    encoding.writeUint8(e, 3)
    encoding.writeVarUint(e, 1)
    encoding.writeUint8(e, 7)
    encoding.writeVarString(e, 'x')
    expect(() => decodePlaintext(encoding.toUint8Array(e))).toThrow(/unknown item kind 7/)
    const whole = encodePlaintext(mixed)
    expect(() => decodePlaintext(whole.subarray(0, whole.byteLength - 3))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }))
    expect(() => decodePlaintext(new Uint8Array([...whole, 0]))).toThrow(/trailing bytes/)
  })

  it('sealed: unit ids, file names, blob hashes and content are inside the ciphertext only', async () => {
    const blob = await seal(KEY, ctx, mixed)
    const seen = Buffer.from(blob).toString('latin1')
    for (const s of ['MARKER', 'secret-name', UNIT, HASH, '_folder', 'notes']) expect(seen.includes(s), s).toBe(false)
    expect(await open(KEY, ctx, blob)).toEqual(mixed)
    await expect(open(KEY, { ...ctx, epoch: 3 }, blob)).rejects.toSatisfy((err: unknown) => isKitsyncError(err, 'DATA_CORRUPTION'))
  })
})
