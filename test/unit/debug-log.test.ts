import { generateKeyPair } from '@libp2p/crypto/keys'
import { disable, enable } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { debugLog, setDebugSink } from '../../src/core/debug-log.js'
import { libp2pDebugSink } from '../../src/net/debug-sink.js'
import { checkRevokedNotice, signRevokedNotice } from '../../src/net/revocation-notice.js'
import { decodeFrame, FrameType } from '../../src/protocol/sync-frames.js'

/**
 * Errors the library handles by going on are logged at debug with what failed and for whom
 * (core/debug-log.ts, net/debug-sink.ts), shown with DEBUG=kitsync:*.
 */
describe('debug lines for handled errors', () => {
  afterEach(() => {
    setDebugSink(undefined)
    disable()
    vi.restoreAllMocks()
  })

  /** What is written to stderr (where @libp2p/logger writes) while `fn` runs. */
  async function stderrOf(fn: () => unknown): Promise<string> {
    const lines: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk))
      return true
    })
    await fn()
    vi.restoreAllMocks()
    return lines.join('')
  }

  it("core's logger writes to the sink the process installed, with its scope, and to none before", () => {
    const log = debugLog('test:scope')
    expect(() => log('nothing installed')).not.toThrow()
    const seen: unknown[][] = []
    setDebugSink((...args) => seen.push(args))
    const err = new Error('boom')
    log('cannot do the thing for peer P', err)
    log('no error')
    expect(seen).toEqual([
      ['test:scope', 'cannot do the thing for peer P', err],
      ['test:scope', 'no error', undefined],
    ])
    setDebugSink(undefined)
    log('dropped')
    expect(seen).toHaveLength(2)
  })

  it('the libp2p sink writes kitsync:<scope> lines with the error when DEBUG enables them, and nothing otherwise', async () => {
    expect(await stderrOf(() => libp2pDebugSink('test:off', 'quiet', new Error('unseen')))).toBe('')
    enable('kitsync:test:*')
    const out = await stderrOf(() => libp2pDebugSink('test:on', 'cannot push keys to P', new Error('stream reset')))
    expect(out).toContain('kitsync:test:on')
    expect(out).toContain('cannot push keys to P')
    expect(out).toContain('stream reset')
  })

  it('a REVOKED notice whose signer cannot be checked is refused, and the failure is logged with the signer', async () => {
    const key = await generateKeyPair('Ed25519')
    const signer = peerIdFromPrivateKey(key).toString()
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const frame = decodeFrame(await signRevokedNotice(key, { workspaceId: 'w'.repeat(32), revoked: self, revokedBy: signer, revokedAt: 1, reason: '', signer }))
    if (frame.type !== FrameType.REVOKED) throw new Error('not a REVOKED frame')
    enable('kitsync:net:*')
    let why: string | undefined
    const out = await stderrOf(async () => {
      why = await checkRevokedNotice(frame, {
        workspaceId: 'w'.repeat(32),
        self,
        from: signer,
        isTrustedMember: async () => Promise.reject(new Error('store closed')),
      })
    })
    expect(why).toBe(`its signer ${signer} is not a trusted member`)
    expect(out).toContain('kitsync:net:revocation-notice')
    expect(out).toContain(signer)
    expect(out).toContain('store closed')
  })
})
