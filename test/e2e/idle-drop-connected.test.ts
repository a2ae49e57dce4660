import { describe, expect, it } from 'vitest'
import { waitUntil } from '../helpers/cli.js'
import { loopbackPeers } from '../helpers/loopback-peers.js'

/**
 * Two connected peers (in this process, real libp2p on loopback, LevelDB homes) drop an idle
 * collection's document (daemon/idle-docs.ts) while their session stays open: the session does
 * not keep it loaded. Reads after the drop answer every record from the stored rows without
 * loading it again, and a change made after the drop still reaches the other peer.
 */

const peers = loopbackPeers()
type Ws = Awaited<ReturnType<typeof peers.start>>['workspace']
/** The record's price; undefined while the peer does not hold the collection yet. */
const priceOf = async (ws: Ws, key: string): Promise<number | undefined> =>
  ((await ws.get('quotes', key).catch(() => undefined)) as { price?: number } | undefined)?.price
const RECORDS = 500
const WAIT = 30_000

describe('an idle document is dropped while a peer is connected', () => {
  it('both peers drop it, reads still return every record, and a later change syncs', async () => {
    const a = await peers.start()
    const b = await peers.start()
    const invite = await a.createInvite()
    expect((await b.join(invite.token, 'b')).caughtUp).toBe(true)
    for (let i = 0; i < RECORDS; i++) await a.workspace.set('quotes', `k${i}`, { symbol: `S${i}`, price: i })
    const last = `k${RECORDS - 1}`
    await waitUntil(async () => (await priceOf(b.workspace, last)) === RECORDS - 1 || undefined, WAIT, 'B has the records')

    // Idle and connected: each drops its document.
    await waitUntil(
      async () => (a.workspace.loadedDoc('quotes') === undefined && b.workspace.loadedDoc('quotes') === undefined) || undefined,
      WAIT,
      'both peers dropped the document',
    )
    const connected = async (): Promise<boolean> => (await b.devices()).some((d) => d.peerId === a.deviceId && d.state === 'connected')
    expect(await connected()).toBe(true)

    // Reads come from the rows: every record, and the document stays dropped.
    const all = (await b.workspace.getAll('quotes')) as Record<string, { price: number }>
    expect(Object.keys(all)).toHaveLength(RECORDS)
    expect(all[last]).toEqual({ symbol: `S${RECORDS - 1}`, price: RECORDS - 1 })
    expect(await a.workspace.get('quotes', 'k7')).toEqual({ symbol: 'S7', price: 7 })
    expect(b.workspace.loadedDoc('quotes')).toBeUndefined()
    expect(a.workspace.loadedDoc('quotes')).toBeUndefined()

    // A change after the drop loads it on A and reaches B over the same session.
    await a.workspace.set('quotes', 'k7', { symbol: 'S7', price: -7 })
    await waitUntil(async () => (await priceOf(b.workspace, 'k7')) === -7 || undefined, WAIT, 'the change on B')
    expect(await connected()).toBe(true)
  })
})
