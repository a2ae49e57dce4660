import { describe, expect, it } from 'vitest'
import { KitsyncError } from '../../src/core/errors.js'
import { decodeHistoryFrame, encodeHistoryFrame, HistoryFrameType, isHistoryFrame, RangeMode, type HistoryFrame } from '../../src/protocol/history-frames.js'

/** docs/PROTOCOL.md, "History": the frames byte by byte, written here by hand from the spec. */

const ID = 'k\u0000' + '000000001.0000.dev' // KEY \0 STAMP, 20 bytes
const STAMP_HEX = Buffer.from('000000001.0000.dev').toString('hex')
/** The item as the first string of a frame: shares 0 bytes, then its 20 bytes. */
const ID_HEX = '00' + '14' + '6b00' + STAMP_HEX
const NOTES = '05' + Buffer.from('notes').toString('hex')

const cases: [string, HistoryFrame, string][] = [
  [
    'HISTORY_RANGES',
    {
      type: HistoryFrameType.HISTORY_RANGES,
      collection: 'notes',
      since: 300,
      lower: '',
      ranges: [
        { mode: RangeMode.SKIP, upper: 'a' },
        { mode: RangeMode.FINGERPRINT, upper: 'k', count: 2, fingerprint: Uint8Array.from({ length: 16 }, (_, i) => i) },
        { mode: RangeMode.IDS, upper: undefined, ids: [ID] },
      ],
    },
    // type 20, collection, since 300 (varuint ac 02), lower '' (shares 0, 0 more bytes), 3 ranges:
    // SKIP up to 'a'; FINGERPRINT count 2, 16 bytes, up to 'k'; IDS [ID] (shares 'k' with the
    // bound before it, then 19 bytes), open.
    '14' +
      NOTES +
      'ac02' +
      '0000' +
      '03' +
      ('00' + '01' + '000161') +
      ('01' + '02' + '000102030405060708090a0b0c0d0e0f' + '01' + '00016b') +
      ('02' + '01' + '01' + '13' + '00' + STAMP_HEX + '00'),
  ],
  [
    'HISTORY_ITEMS',
    { type: HistoryFrameType.HISTORY_ITEMS, collection: 'notes', items: [{ id: ID, entry: new TextEncoder().encode('{}') }] },
    '15' + NOTES + '01' + ID_HEX + '02' + '7b7d',
  ],
  ['HISTORY_WANT', { type: HistoryFrameType.HISTORY_WANT, collection: 'notes', ids: [ID] }, '16' + NOTES + '01' + ID_HEX],
]

describe('history frames', () => {
  it('writes each item as the bytes it shares with the one before it, then the rest', () => {
    const second = 'k\u0000' + '000000002.0000.dev'
    const bytes = encodeHistoryFrame({ type: HistoryFrameType.HISTORY_WANT, collection: 'notes', ids: [ID, second] })
    // The second item shares 10 bytes ('k', NUL, '00000000') and adds 10.
    expect(Buffer.from(bytes).toString('hex')).toBe('16' + NOTES + '02' + ID_HEX + '0a' + '0a' + Buffer.from('2.0000.dev').toString('hex'))
    expect(decodeHistoryFrame(bytes)).toEqual({ type: HistoryFrameType.HISTORY_WANT, collection: 'notes', ids: [ID, second] })
  })

  it.each(cases)('%s: fixed bytes both ways', (_name, frame, hex) => {
    expect(Buffer.from(encodeHistoryFrame(frame)).toString('hex')).toBe(hex)
    expect(decodeHistoryFrame(Buffer.from(hex, 'hex'))).toEqual(frame)
    expect(isHistoryFrame(Buffer.from(hex, 'hex'))).toBe(true)
  })

  it('are told apart from sync (0-4) and unit (5-10) frames by their first byte; 11-19 stay free', () => {
    for (let t = 0; t < 20; t++) expect(isHistoryFrame(Uint8Array.of(t))).toBe(false)
    for (const t of [20, 21, 22]) expect(isHistoryFrame(Uint8Array.of(t))).toBe(true)
    expect(isHistoryFrame(Uint8Array.of(23))).toBe(false)
    expect(isHistoryFrame(new Uint8Array(0))).toBe(false)
  })

  it.each([
    ['an unknown range mode', '14' + NOTES + '00' + '0000' + '01' + '07' + '00'],
    ['trailing bytes', '16' + NOTES + '01' + ID_HEX + 'ff'],
    ['an item without a stamp', '16' + NOTES + '01' + '00' + '03' + '6b0078'],
    ['an item with a control character in its key', '16' + NOTES + '01' + '00' + '14' + '0100' + STAMP_HEX],
    ['an item sharing more bytes than the one before it has', '16' + NOTES + '02' + ID_HEX + '15' + '00'],
    ['bytes that are not UTF-8', '16' + NOTES + '01' + '00' + '02' + 'c328'],
    ['a truncated fingerprint', '14' + NOTES + '00' + '0000' + '01' + '01' + '02' + '0001'],
    ['a bound flag other than 0 or 1', '14' + NOTES + '00' + '0000' + '01' + '00' + '02'],
    ['an unknown frame type', '17' + NOTES],
  ])('refuse %s with PROTOCOL_ERROR', (_what, hex) => {
    let error: unknown
    try {
      decodeHistoryFrame(Buffer.from(hex, 'hex'))
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(KitsyncError)
    expect((error as KitsyncError).code).toBe('PROTOCOL_ERROR')
    expect((error as KitsyncError).message).toMatch(/^malformed history frame: /)
  })
})
