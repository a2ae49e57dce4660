import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { checkRevokedNotice, signRevokedNotice, type NoticeContext } from '../../src/net/revocation-notice.js'
import { decodeFrame, FrameType, type RevokedFrame, type RevokedStatement } from '../../src/protocol/sync-frames.js'

/**
 * The REVOKED answer of the sync protocol: a revoked device believes it only when a trusted
 * member signed it, for this device and workspace, and sent it itself. Anything else is ignored.
 */

const WORKSPACE = 'a'.repeat(32)

interface Device {
  key: PrivateKey
  id: string
}

async function device(): Promise<Device> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

async function notice(signer: Device, statement: Partial<RevokedStatement> & { revoked: string }): Promise<RevokedFrame> {
  const full: RevokedStatement = { workspaceId: WORKSPACE, revokedBy: signer.id, revokedAt: 1_796_000_000_000, reason: 'lost', signer: signer.id, ...statement }
  const frame = decodeFrame(await signRevokedNotice(signer.key, full))
  if (frame.type !== FrameType.REVOKED) throw new Error('not a REVOKED frame')
  return frame
}

describe('REVOKED notices', async () => {
  const [member, revoked, stranger, untrusted] = [await device(), await device(), await device(), await device()]
  const ctx = (from: string): NoticeContext => ({
    workspaceId: WORKSPACE,
    self: revoked.id,
    from,
    isTrustedMember: async (id) => id === member.id,
  })

  it('a trusted member’s notice, sent by that member, is believed', async () => {
    const n = await notice(member, { revoked: revoked.id })
    expect(n).toMatchObject({
      workspaceId: WORKSPACE,
      revoked: revoked.id,
      revokedBy: member.id,
      revokedAt: 1_796_000_000_000,
      reason: 'lost',
      signer: member.id,
    })
    expect(await checkRevokedNotice(n, ctx(member.id))).toBeUndefined()
  })

  it.each([
    ['signed by a device that is not a member', async () => [await notice(stranger, { revoked: revoked.id }), stranger.id] as const, /not a trusted member/],
    ['signed by an untrusted member (the VPS)', async () => [await notice(untrusted, { revoked: revoked.id }), untrusted.id] as const, /not a trusted member/],
    ['for another workspace', async () => [await notice(member, { revoked: revoked.id, workspaceId: 'b'.repeat(32) }), member.id] as const, /for workspace/],
    ['about another device', async () => [await notice(member, { revoked: stranger.id }), member.id] as const, /about device/],
    [
      'naming a member as signer, sent by a stranger',
      async () => [await notice(member, { revoked: revoked.id }), stranger.id] as const,
      /not by the peer that sent it/,
    ],
    [
      'naming a member as signer, signed by a stranger',
      async () => {
        const forged = await notice(stranger, { revoked: revoked.id, signer: member.id })
        return [forged, member.id] as const
      },
      /signature does not verify/,
    ],
    [
      'with its statement changed after signing',
      async () => {
        const n = await notice(member, { revoked: revoked.id })
        return [{ ...n, revokedAt: n.revokedAt + 1 }, member.id] as const
      },
      /signature does not verify/,
    ],
    [
      'with a signature that is not one',
      async () => {
        const n = await notice(member, { revoked: revoked.id })
        return [{ ...n, signature: new Uint8Array(3) }, member.id] as const
      },
      /signature does not verify/,
    ],
  ])('is ignored when %s', async (_what, make, why) => {
    const [n, from] = await make()
    expect(await checkRevokedNotice(n, ctx(from))).toMatch(why)
  })

  it('decodes only well-formed frames', async () => {
    const bytes = await signRevokedNotice(member.key, {
      workspaceId: WORKSPACE,
      revoked: revoked.id,
      revokedBy: member.id,
      revokedAt: 1,
      reason: '',
      signer: member.id,
    })
    expect(() => decodeFrame(bytes.subarray(0, bytes.byteLength - 1))).toThrow(/malformed sync frame/)
    expect(() => decodeFrame(new Uint8Array([...bytes, 0]))).toThrow(/trailing bytes/)
  })
})
