import type { PrivateKey } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeFrame, FrameType, revokedSignatureInput, type RevokedFrame, type RevokedStatement } from '../protocol/sync-frames.js'

const log = logger('kitsync:net:revocation-notice')

/**
 * The signed "you are revoked" answer of the sync protocol (a REVOKED frame, docs/PROTOCOL.md).
 * A member sends it, instead of nothing, to a device in `_revoked` that opens a sync stream, so
 * the device learns why every member refuses it; the device believes it only from a member it
 * trusts, over the connection that member authenticated.
 */

/** The encoded REVOKED frame body of a statement, signed with this device's key. */
export async function signRevokedNotice(privateKey: PrivateKey, statement: RevokedStatement): Promise<Uint8Array> {
  const signature = await privateKey.sign(revokedSignatureInput(statement))
  return encodeFrame({ type: FrameType.REVOKED, ...statement, signature })
}

export interface NoticeContext {
  /** The receiver's workspace and device id. */
  workspaceId: string
  self: string
  /** The peer the frame came from (its PeerId, as Noise authenticated the connection). */
  from: string
  /** Is this device a trusted member (not untrusted, not revoked) as the receiver knows the membership? */
  isTrustedMember: (deviceId: string) => Promise<boolean>
}

/**
 * Why a REVOKED frame is not to be believed, or undefined when it is: it is about this device
 * and workspace, comes from its signer, the signer is a trusted member, and the signature (by the
 * signer's Ed25519 key, which its PeerId holds) covers the statement.
 */
export async function checkRevokedNotice(notice: RevokedFrame, ctx: NoticeContext): Promise<string | undefined> {
  if (notice.workspaceId !== ctx.workspaceId) return `it is for workspace ${notice.workspaceId}`
  if (notice.revoked !== ctx.self) return `it is about device ${notice.revoked}`
  if (notice.signer !== ctx.from) return `it is signed by ${notice.signer}, not by the peer that sent it`
  if (notice.signer === ctx.self) return 'it is signed by this device'
  // A signer that cannot be checked is not believed.
  const trusted = await ctx.isTrustedMember(notice.signer).catch((err: unknown) => {
    log('cannot check whether %s, the signer of a REVOKED notice, is a trusted member: %e', notice.signer, err)
    return false
  })
  if (!trusted) return `its signer ${notice.signer} is not a trusted member`
  let valid = false
  try {
    const key = peerIdFromString(notice.signer).publicKey
    valid = key !== undefined && (await key.verify(revokedSignatureInput(notice), notice.signature))
  } catch {
    valid = false // a signer that is no PeerId, or a key that cannot verify: not verified
  }
  return valid ? undefined : 'its signature does not verify'
}
