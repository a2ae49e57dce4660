import { describe, expect, it } from 'vitest'
import {
  decodeUnitFrame,
  encodeUnitFrame,
  isUnitFrame,
  UNIT_BUCKETS,
  unitBucket,
  UnitFrameType,
  UnitStep,
  type UnitFrame,
} from '../../src/protocol/unit-frames.js'
import { FrameType } from '../../src/protocol/sync-frames.js'

/**
 * The unit and blob frames of docs/PROTOCOL.md ("Units and blobs"), byte for byte: a change of
 * layout breaks a peer of the same protocol version, so each frame is pinned to fixed bytes.
 */
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const HASH = 'ab'.repeat(32)

describe('unit frames', () => {
  const cases: [string, UnitFrame, string][] = [
    // type 6, "c" (len 1), 1 bucket: bucket 3, 1 unit "u1" with digest 0x01020304
    [
      'UNIT_LIST',
      { type: UnitFrameType.UNIT_LIST, collection: 'c', buckets: [{ bucket: 3, units: [{ unit: 'u1', digest: 0x01020304 }] }] },
      '06' + '0163' + '01' + '03' + '01' + '027531' + '01020304',
    ],
    // type 7, "c", 2 wants: "a" with vector [0], "b" with vector [1, 5, 2]
    [
      'UNIT_WANT',
      {
        type: UnitFrameType.UNIT_WANT,
        collection: 'c',
        wants: [
          { unit: 'a', vector: new Uint8Array([0]) },
          { unit: 'b', vector: new Uint8Array([1, 5, 2]) },
        ],
      },
      '07' + '0163' + '02' + '0161' + '0100' + '0162' + '03010502',
    ],
    // type 8, "c", unit "a", step 1 (live), payload [0, 0]
    [
      'UNIT_UPDATE',
      { type: UnitFrameType.UNIT_UPDATE, collection: 'c', unit: 'a', step: UnitStep.LIVE, payload: new Uint8Array([0, 0]) },
      '08' + '0163' + '0161' + '01' + '020000',
    ],
    // type 9, the 32 bytes of the hash
    ['BLOB_WANT', { type: UnitFrameType.BLOB_WANT, hash: HASH }, '09' + 'ab'.repeat(32)],
    // type 10, hash, found 1, bytes [7, 8]
    ['BLOB with bytes', { type: UnitFrameType.BLOB, hash: HASH, bytes: new Uint8Array([7, 8]) }, '0a' + 'ab'.repeat(32) + '01' + '020708'],
    // type 10, hash, found 0
    ['BLOB without', { type: UnitFrameType.BLOB, hash: HASH, bytes: undefined }, '0a' + 'ab'.repeat(32) + '00'],
  ]

  it.each(cases)('%s: fixed bytes both ways', (_name, frame, bytes) => {
    expect(hex(encodeUnitFrame(frame))).toBe(bytes)
    expect(decodeUnitFrame(Buffer.from(bytes, 'hex'))).toEqual(frame)
    expect(isUnitFrame(Buffer.from(bytes, 'hex'))).toBe(true)
  })

  it('UNIT_SUMS: 256 sums of 4 bytes, big-endian', () => {
    const sums = new Uint32Array(UNIT_BUCKETS)
    sums[0] = 1
    sums[255] = 0xffffffff
    const bytes = encodeUnitFrame({ type: UnitFrameType.UNIT_SUMS, collection: 'c', sums })
    // type 5, "c", varuint 256 (0x80 0x02), then 1,024 bytes
    expect(bytes.byteLength).toBe(1 + 2 + 2 + 1024)
    expect(hex(bytes.subarray(0, 9))).toBe('05' + '0163' + '8002' + '00000001')
    expect(hex(bytes.subarray(bytes.byteLength - 4))).toBe('ffffffff')
    expect(decodeUnitFrame(bytes)).toEqual({ type: UnitFrameType.UNIT_SUMS, collection: 'c', sums })
  })

  it('buckets are FNV-1a of the unit id, mod 256', () => {
    // FNV-1a 32 of "a" is 0xe40c292c.
    expect(unitBucket('a')).toBe(0xe40c292c % 256)
    expect(unitBucket('')).toBe(0x811c9dc5 % 256)
  })

  it('the record frames are not unit frames', () => {
    for (const type of Object.values(FrameType)) expect(isUnitFrame(new Uint8Array([type]))).toBe(false)
  })

  it.each([
    ['an unknown step', '08' + '0163' + '0161' + '05' + '020000'],
    ['a unit id with a slash', '08' + '0163' + '03612f62' + '01' + '020000'],
    ['sums of 255 buckets', '05' + '0163' + 'ff01' + '00'.repeat(4 * 255)],
    ['a bucket past 255', '06' + '0163' + '01' + '8002' + '00'],
    ['trailing bytes', '09' + 'ab'.repeat(32) + '00'],
    ['a short hash', '09' + 'ab'.repeat(31)],
    ['a blob flag of 2', '0a' + 'ab'.repeat(32) + '02'],
  ])('refuses %s with PROTOCOL_ERROR', (_name, bytes) => {
    expect(() => decodeUnitFrame(Buffer.from(bytes, 'hex'))).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }) as Error)
  })
})
