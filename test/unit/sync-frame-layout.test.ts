import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { describe, expect, it } from 'vitest'
import * as syncProtocol from 'y-protocols/sync'
import * as Y from 'yjs'
import { decodeFrame, encodeFrame, encodeFrameParts, FrameType, SyncStep } from '../../src/protocol/sync-frames.js'

/**
 * docs/PROTOCOL.md: a SYNC frame is the frame type, the collection name, then a y-protocols sync
 * message (its message type and its payload as a varUint8Array). kitsync writes the frames with
 * its own codec (the payload is not copied through an encoder, and the engine checks an update
 * before it applies it, which y-protocols' readers do not allow); this holds the codec to
 * y-protocols' own writers, byte for byte.
 */
describe('SYNC frames carry y-protocols sync messages', () => {
  const doc = new Y.Doc()
  doc.getMap('records').set('r1', 'hello')
  const other = new Y.Doc()
  other.getMap('records').set('r2', 'there')
  const otherSv = Y.encodeStateVector(other)
  const update = Y.encodeStateAsUpdate(other)

  /** The frame y-protocols' writer would make: type, collection, then the message it writes. */
  function withYProtocols(collection: string, write: (e: encoding.Encoder) => void): Uint8Array {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, FrameType.SYNC)
    encoding.writeVarString(e, collection)
    write(e)
    return encoding.toUint8Array(e)
  }

  const cases = [
    ['STEP1', SyncStep.STEP1, syncProtocol.messageYjsSyncStep1, Y.encodeStateVector(doc), (e: encoding.Encoder) => syncProtocol.writeSyncStep1(e, doc)],
    [
      'STEP2',
      SyncStep.STEP2,
      syncProtocol.messageYjsSyncStep2,
      Y.encodeStateAsUpdate(doc, otherSv),
      (e: encoding.Encoder) => syncProtocol.writeSyncStep2(e, doc, otherSv),
    ],
    ['UPDATE', SyncStep.UPDATE, syncProtocol.messageYjsUpdate, update, (e: encoding.Encoder) => syncProtocol.writeUpdate(e, update)],
  ] as const

  it.each(cases)('%s: same step number and same bytes as y-protocols writes', (_name, step, yStep, payload, write) => {
    expect(step).toBe(yStep)
    const expected = withYProtocols('notes', write)
    const frame = { type: FrameType.SYNC, collection: 'notes', step, payload } as const
    expect(encodeFrame(frame)).toEqual(expected)
    expect(Buffer.concat(encodeFrameParts(frame))).toEqual(Buffer.from(expected))
  })

  it.each(cases)('%s: a frame y-protocols wrote decodes to its step and payload', (_name, step, _yStep, payload, write) => {
    const decoded = decodeFrame(withYProtocols('notes', write))
    expect(decoded).toEqual({ type: FrameType.SYNC, collection: 'notes', step, payload })
  })

  it("leaves a y-protocols reader at the frame's end: the message is the whole rest of the frame", () => {
    const bytes = encodeFrame({ type: FrameType.SYNC, collection: 'notes', step: SyncStep.UPDATE, payload: update })
    const d = decoding.createDecoder(bytes)
    expect(decoding.readVarUint(d)).toBe(FrameType.SYNC)
    expect(decoding.readVarString(d)).toBe('notes')
    const target = new Y.Doc()
    expect(syncProtocol.readSyncMessage(d, encoding.createEncoder(), target, null)).toBe(syncProtocol.messageYjsUpdate)
    expect(decoding.hasContent(d)).toBe(false)
    expect(target.getMap('records').get('r2')).toBe('there')
  })
})
