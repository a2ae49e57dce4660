import { describe, expect, it } from 'vitest'
import { SYNC_PROTOCOL_ID } from '../../dist/protocol/sync-frames.js'
import { makeHome as home, waitUntil } from '../helpers/cli.js'
import { loopbackPeers } from '../helpers/loopback-peers.js'

/**
 * A new device copying a large collection from a running peer, over real libp2p (TCP, Noise,
 * yamux) on loopback and real LevelDB: the inviter sends what it stores as it is stored (the
 * snapshot, then its log merged), and the joiner keeps that copy as its own snapshot.
 */

const peers = loopbackPeers()

describe('catch-up of a new device', () => {
  it('copies a collection of megabytes from the snapshot and log the inviter stores, and keeps it', async () => {
    const a = await peers.start()
    const text = 'lorem ipsum dolor sit amet '.repeat(200)
    await Promise.all(Array.from({ length: 600 }, (_, i) => a.workspace.set('journal', `e${String(i).padStart(4, '0')}`, { i, text })))
    await a.workspace.compact('journal')
    for (let i = 0; i < 3; i++) await a.workspace.set('journal', `late${i}`, { i })
    // What the inviter's store hands out for the copy.
    const served: Uint8Array[][] = []
    const storedState = a.workspace.storedState.bind(a.workspace)
    a.workspace.storedState = async (name: string) => {
      const parts = await storedState(name)
      if (name === 'journal' && parts !== undefined) served.push(parts)
      return parts
    }

    const jHome = await home()
    const j = await peers.start(jHome)
    const invite = await a.createInvite()
    const result = await j.join(invite.token, 'joiner')
    expect(result.caughtUp).toBe(true)
    const expected = await a.workspace.getAll('journal')
    expect(Object.keys(expected)).toHaveLength(603)
    // Caught up means stored here: every record is there at once.
    expect(await j.workspace.getAll('journal')).toEqual(expected)
    // The snapshot (over 3 MB, so sent in slices) and the three updates written after it.
    expect(served).toHaveLength(1)
    expect(served[0]).toHaveLength(4)
    expect((served[0] as Uint8Array[])[0]?.byteLength).toBeGreaterThan(3_000_000)
    // The copy is the joiner's snapshot, and it survives a restart.
    expect((await j.workspace.storageStats('journal')).snapshotBytes).toBeGreaterThan(3_000_000)
    await peers.stop(j)
    const again = await peers.start(jHome)
    expect(await again.workspace.getAll('journal')).toEqual(expected)
  })

  it('a joiner whose own sync stream fails still catches up on the session the inviter opens', async () => {
    // Both devices may open a sync stream at the same moment (an inviter that sees the new
    // device's connection only after admitting it, or `kitsync pair` in the foreground): one of
    // the two streams is closed, and under load the other can take longer to open than the
    // joiner waited for it (2 s). The join then failed with the closed stream's error (with no
    // code), although the device was a member and its session was on its way.
    const a = await peers.start()
    await a.workspace.set('notes', 'n1', { text: 'before the join' })
    const j = await peers.start()
    // Here the joiner's streams fail for sure: the inviter does not take the sync protocol
    // during the join. It opens its own session to the joiner 2.5 s after admitting it.
    await a.mesh.node.unhandle(SYNC_PROTOCOL_ID)
    let opened: Promise<void> | undefined
    a.invites.on('used', ({ deviceId }) => {
      opened = new Promise((resolve) => setTimeout(resolve, 2_500)).then(() => a.mesh.openSyncTo(deviceId))
    })
    const invite = await a.createInvite()
    const result = await j.join(invite.token, 'joiner')
    expect(opened).toBeDefined()
    await opened
    expect(result.caughtUp).toBe(true)
    expect(await j.workspace.get('notes', 'n1')).toEqual({ text: 'before the join' })
  })

  it('syncing with a device whose session is in its first exchange waits for that session instead of opening another', async () => {
    const a = await peers.start()
    await a.workspace.set('notes', 'n1', { text: 'before the join' })
    // The inviter answers the new device's first exchange only after a second.
    const storedState = a.workspace.storedState.bind(a.workspace)
    a.workspace.storedState = async (name: string) => {
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      return storedState(name)
    }
    const j = await peers.start()
    let sessionsOnA = 0
    a.mesh.on('connected', (e) => {
      if (e.peerId === j.deviceId) sessionsOnA++
    })
    const invite = await a.createInvite()
    const joined = j.join(invite.token, 'joiner')
    const first = await waitUntil(async () => j.engine.sessions().find((s) => s.peerId === a.deviceId), 10_000, "the joiner's session with the inviter")
    expect(first.isCaughtUp).toBe(false)
    // A sync with the inviter while a session's first exchange runs (as when the inviter opened
    // that session before the join got to open its own).
    expect(await j.syncWith(a.deviceId, 10_000)).toBe(true)
    expect((await joined).caughtUp).toBe(true)
    expect(first.isClosed).toBe(false)
    expect(sessionsOnA).toBe(1)
    expect(await j.workspace.get('notes', 'n1')).toEqual({ text: 'before the join' })
  })
})
