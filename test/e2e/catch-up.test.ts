import { describe, expect, it } from 'vitest'
import { makeHome as home } from '../helpers/cli.js'
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
})
