import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { instanceName, open, seal, toTxt, WINDOW_MS } from '../../src/net/discovery-record.js'

const peerId = '12D3KooWRRaqYi2ysmeLkZaKTAqAgYqCP8no8KeuJEiHWdgQ5NnF'
const announcement = { peerId, addresses: ['/ip4/10.0.0.5/tcp/4771'] }

describe('private discovery records', () => {
  it('members open what a member sealed; the bytes show no device id, no address, no fixed name', () => {
    const key = randomBytes(32)
    const now = Date.now()
    const name = instanceName(key, now)
    const sealed = seal(key, name, announcement, now)
    expect(open([key], name, sealed, now)).toEqual(announcement)
    const onTheWire = Buffer.concat([Buffer.from(name), ...toTxt(sealed)]).toString('latin1')
    expect(onTheWire).not.toContain(peerId)
    expect(onTheWire).not.toContain('10.0.0.5')
    expect(onTheWire).not.toContain('4771')
    // The name changes with the time window, and two windows never share it.
    expect(instanceName(key, now + WINDOW_MS)).not.toBe(name)
    expect(toTxt(Buffer.alloc(600)).map((b) => b.byteLength)).toEqual([250, 250, 100])
  })

  it('refuses another workspace key, a changed byte, a record moved to another name, and stale records', () => {
    const key = randomBytes(32)
    const now = Date.now()
    const name = instanceName(key, now)
    const sealed = seal(key, name, announcement, now)
    expect(open([randomBytes(32)], name, sealed, now)).toBeUndefined()
    const flipped = Buffer.from(sealed)
    flipped[20] = (flipped[20] as number) ^ 1
    expect(open([key], name, flipped, now)).toBeUndefined()
    expect(open([key], instanceName(key, now + WINDOW_MS), sealed, now)).toBeUndefined()
    expect(open([key], name, sealed, now + 3 * WINDOW_MS)).toBeUndefined()
    // An older key among the keys still opens a record sealed with it.
    expect(open([randomBytes(32), key], name, sealed, now)).toEqual(announcement)
  })
})
