import { fromBase64, toBase64 } from 'lib0/buffer'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { covers, encodeVector, mergeVector, updateClocks } from '../../src/blind/state-vectors.js'

/**
 * The blind client keeps, per store and collection, a base64 state vector in the device-local
 * values. It used to encode them by hand (varuint, btoa); now lib0 does: the bytes and the text
 * must stay the same, or a device would misread what it saved before the change. The vectors
 * below were produced by the hand-rolled code.
 */

/** [clocks in map order, the old encoding's bytes, its base64] */
const VECTORS: [[number, number][], number[], string][] = [
  [[], [0], 'AA=='],
  [[[1, 0]], [1, 1, 0], 'AQEA'],
  [[[127, 128]], [1, 127, 128, 1], 'AX+AAQ=='],
  [
    [
      [0xffffffff, 2 ** 31],
      [300, 16384],
    ],
    [2, 255, 255, 255, 255, 15, 128, 128, 128, 128, 8, 172, 2, 128, 128, 1],
    'Av////8PgICAgAisAoCAAQ==',
  ],
  [[[3, Number.MAX_SAFE_INTEGER]], [1, 3, 255, 255, 255, 255, 255, 255, 255, 15], 'AQP/////////Dw=='],
]

/** The base64 the blind client used before lib0 (btoa over 32 KiB chunks). */
function oldBase64(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}

describe('blind state vectors', () => {
  it.each(VECTORS)('encodes %j as the hand-rolled varuint and base64 did', (clocks, bytes, text) => {
    const encoded = encodeVector(new Map(clocks))
    expect([...encoded]).toEqual(bytes)
    expect(toBase64(encoded)).toBe(text)
    expect([...fromBase64(text)]).toEqual(bytes)
    // Yjs reads it back as the same clocks.
    expect([...Y.decodeStateVector(encoded)]).toEqual(clocks)
  })

  it('base64 of large and odd-length values matches the old btoa text and reads back', () => {
    for (const n of [0, 1, 2, 3, 0x8000 - 1, 0x8000, 0x8000 + 1, 70_001]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff)
      expect(toBase64(bytes)).toBe(oldBase64(bytes))
      const back = fromBase64(oldBase64(bytes))
      expect(back.length).toBe(n)
      expect(Buffer.from(back).equals(bytes)).toBe(true)
    }
  })

  it('encodes as Y.encodeStateVector does for a real document', () => {
    const doc = new Y.Doc()
    doc.clientID = 123456
    doc.getMap('m').set('a', 1)
    doc.getMap('m').set('b', 2)
    expect(encodeVector(Y.decodeStateVector(Y.encodeStateVector(doc)))).toEqual(Y.encodeStateVector(doc))
  })

  it('merges clocks, keeping the larger of each client', () => {
    const merged = mergeVector(
      encodeVector(
        new Map([
          [1, 5],
          [2, 9],
        ]),
      ),
      new Map([
        [1, 7],
        [2, 3],
        [3, 1],
      ]),
    )
    expect(Y.decodeStateVector(merged)).toEqual(
      new Map([
        [1, 7],
        [2, 9],
        [3, 1],
      ]),
    )
    expect(Y.decodeStateVector(mergeVector(undefined, new Map([[4, 2]])))).toEqual(new Map([[4, 2]]))
  })

  it('covers: every clock reached', () => {
    const sv = encodeVector(new Map([[1, 5]]))
    expect(covers(sv, encodeVector(new Map([[1, 5]])))).toBe(true)
    expect(covers(sv, encodeVector(new Map([[1, 6]])))).toBe(false)
    expect(covers(undefined, encodeVector(new Map()))).toBe(true)
    expect(covers(undefined, encodeVector(new Map([[2, 1]])))).toBe(false)
  })

  it('updateClocks skips the gaps of a merged update (Y.Skip)', () => {
    const doc = new Y.Doc()
    doc.clientID = 7
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    for (const k of ['a', 'b', 'c']) doc.getMap('m').set(k, 1)
    const withGap = Y.mergeUpdates([updates[0] as Uint8Array, updates[2] as Uint8Array])
    const structs = Y.decodeUpdate(withGap).structs
    expect(structs.map((s) => s instanceof Y.Skip)).toEqual([false, true, false])
    // The old test (constructor.name === 'Skip') and the public class agree.
    expect(structs.map((s) => s.constructor.name === 'Skip')).toEqual([false, true, false])
    expect(updateClocks(withGap)).toEqual(new Map([[7, 3]]))
    expect(updateClocks(updates[1] as Uint8Array)).toEqual(new Map([[7, 2]]))
  })
})
