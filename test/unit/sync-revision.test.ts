import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import type { KitsyncError } from '../../src/core/errors.js'
import { decodeFrame, encodeFrame, FrameType, SYNC_PROTOCOL_VERSION, type Frame } from '../../src/protocol/sync-frames.js'
import { SyncEngine } from '../../src/sync/sync-engine.js'
import type { SyncHost } from '../../src/sync/sync-host.js'

/**
 * HELLO's revision: a device of revision 2 (sync 2.0.0 before the unit, blob and history frames)
 * would refuse those frames as unknown in the middle of a session. This revision says 3 in its
 * HELLO and closes a session whose peer says 2 with VERSION_MISMATCH, before any frame of a
 * collection is sent to it.
 */

function session() {
  const host: SyncHost = {
    workspaceId: 'ws',
    collectionNames: () => ['notes'],
    openDoc: () => Promise.resolve(new Y.Doc()),
    shares: () => true,
    accepts: () => true,
  }
  const sent: Frame[] = []
  let closed: KitsyncError | undefined | 'open' = 'open'
  const s = new SyncEngine(host).attach({
    peerId: 'peerB',
    bufferedBytes: 0,
    send: (frame) => void sent.push(decodeFrame(frame instanceof Uint8Array ? frame : Buffer.concat(frame as Uint8Array[]))),
    close: (error) => {
      closed = error
    },
  })
  return { s, sent, closed: () => closed }
}

describe('the sync revision in HELLO', () => {
  it('is 3, and a peer saying 2 gets VERSION_MISMATCH and no frame of a collection', async () => {
    const { s, sent, closed } = session()
    s.start()
    expect(sent.find((f) => f.type === FrameType.HELLO)).toMatchObject({ version: 3 })
    expect(SYNC_PROTOCOL_VERSION).toBe(3)
    const before = sent.length
    s.receive(encodeFrame({ type: FrameType.HELLO, version: 2, workspaceId: 'ws', collections: ['notes'] }))
    await s.idle()
    expect((closed() as KitsyncError | undefined)?.code).toBe('VERSION_MISMATCH')
    expect(sent.slice(before).filter((f) => f.type === FrameType.SYNC)).toEqual([])
  })

  it('a peer of this revision is answered', async () => {
    const { s, sent, closed } = session()
    s.receive(encodeFrame({ type: FrameType.HELLO, version: SYNC_PROTOCOL_VERSION, workspaceId: 'ws', collections: ['notes'] }))
    await s.idle()
    expect(closed()).toBe('open')
    expect(sent.some((f) => f.type === FrameType.SYNC)).toBe(true)
  })
})
