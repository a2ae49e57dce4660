import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { isKitsyncError } from '../../src/core/errors.js'
import { MEMBERS_COLLECTION, REVOKED_COLLECTION } from '../../src/core/membership.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { BinaryLevel } from '../../src/store/level.js'

async function device(id: string): Promise<LocalWorkspace> {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  return LocalWorkspace.fromDatabase(db as unknown as BinaryLevel, { home: '', deviceId: id, workspaceId: 'ws', name: 'n', version: '0' })
}

describe('sticky revocation', () => {
  it('survives an old membership update, a deleted revocation record, and a new addMember', async () => {
    const a = await device('A')
    await a.addMember('A', { name: 'a', addedBy: 'A', addedAt: 1 })
    await a.addMember('X', { name: 'x', addedBy: 'A', addedAt: 2 })
    // An old copy of the membership, taken while X was trusted.
    const oldMembers = await a.encodeCollection(MEMBERS_COLLECTION)
    await a.revoke('x')
    expect(await a.isMember('X')).toBe(false)

    // Another device (with X's revocation synced) deletes the revocation record.
    const other = new Y.Doc()
    Y.applyUpdate(other, await a.encodeCollection(REVOKED_COLLECTION))
    const before = Y.encodeStateVector(other)
    other.getMap('records').delete('X')
    await a.applyInternalUpdate(REVOKED_COLLECTION, Y.encodeStateAsUpdate(other, before), 'remote')
    expect(await a.isMember('X')).toBe(false)
    // ... and A wrote the revocation back into the synced set.
    expect((await a.revocations()).X).toBeDefined()

    // The old membership arriving later changes nothing.
    await a.applyInternalUpdate(MEMBERS_COLLECTION, oldMembers, 'remote')
    expect(await a.isMember('X')).toBe(false)
    expect((await a.devices()).find((d) => d.peerId === 'X')?.state).toBe('revoked')

    // Nor can X be added again.
    const err = await a.addMember('X', { name: 'x', addedBy: 'A', addedAt: 3 }).catch((e: unknown) => e)
    expect(isKitsyncError(err, 'DEVICE_REVOKED')).toBe(true)
    await a.close()
  })

  it('a device that learns of a revocation by sync emits device:revoked and refuses the device', async () => {
    const a = await device('A')
    const b = await device('B')
    for (const ws of [a, b]) {
      await ws.addMember('A', { name: 'a', addedBy: 'A', addedAt: 1 })
      await ws.addMember('X', { name: 'x', addedBy: 'A', addedAt: 2 })
    }
    const events: string[] = []
    b.on('device:revoked', (e) => events.push(`${e.peerId} by ${e.by}`))
    expect(await b.isMember('X')).toBe(true)
    await a.revoke('X')
    await b.applyInternalUpdate(REVOKED_COLLECTION, await a.encodeCollection(REVOKED_COLLECTION), 'remote')
    expect(events).toEqual(['X by A'])
    expect(await b.isMember('X')).toBe(false)
    await a.close()
    await b.close()
  })

  it('refuses to revoke itself or an unknown device', async () => {
    const a = await device('A')
    await a.addMember('A', { name: 'a', addedBy: 'A', addedAt: 1 })
    expect(isKitsyncError(await a.revoke('A').catch((e: unknown) => e), 'INVALID_ARGUMENT')).toBe(true)
    expect(isKitsyncError(await a.revoke('nobody').catch((e: unknown) => e), 'UNKNOWN_DEVICE')).toBe(true)
    await a.close()
  })
})
