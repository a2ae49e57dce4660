import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { isKitsyncError } from '../../src/core/errors.js'
import { Invites, MAX_TOKEN_TTL_MS } from '../../src/daemon/invites.js'
import type { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

/**
 * Issue 19, item 15d: a pairing token made while the device's clock was far ahead kept that
 * far expiry once the clock was set right: a 10-minute token made with the clock a year ahead
 * stayed valid for a year. The inviter now refuses (TOKEN_EXPIRED) a token it made "in the
 * future" or whose expiry is more than the maximum TTL (7 days) ahead of its clock, and marks
 * it expired for good; and it issues no token with a TTL over the maximum.
 */

afterAll(cleanup)
afterEach(() => {
  vi.useRealTimers()
})

const DAY = 24 * 3600 * 1000
const workspace = { workspaceId: 'w'.repeat(32) } as unknown as LocalWorkspace

async function invites(): Promise<Invites> {
  return Invites.load(join(await makeTempDir(), 'invites.json'), workspace, 'self-device')
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return isKitsyncError(err) ? err.code : String(err)
  }
  return undefined
}

describe('a token made while the clock was ahead', () => {
  it('is refused once the clock is set right, and stays refused when the clock reaches its old window', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const now = Date.now()
    const inv = await invites()
    vi.setSystemTime(now + 365 * DAY)
    const far = await inv.create({ addresses: [] })
    expect(codeOf(() => inv.secretFor(far.tokenId))).toBeUndefined() // valid by the clock that made it
    vi.setSystemTime(now)
    expect(codeOf(() => inv.secretFor(far.tokenId))).toBe('TOKEN_EXPIRED')
    vi.setSystemTime(now + 365 * DAY + 60_000)
    expect(codeOf(() => inv.secretFor(far.tokenId))).toBe('TOKEN_EXPIRED')
  })

  it('is refused for a skew of hours too (10-minute token, clock 2 hours ahead)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const now = Date.now()
    const inv = await invites()
    vi.setSystemTime(now + 2 * 3600 * 1000)
    const ahead = await inv.create({ addresses: [] })
    vi.setSystemTime(now)
    expect(codeOf(() => inv.secretFor(ahead.tokenId))).toBe('TOKEN_EXPIRED')
  })

  it('a token made on a right clock works, also after the clock stepped back a few seconds', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const now = Date.now()
    const inv = await invites()
    const ok = await inv.create({ addresses: [] })
    expect(codeOf(() => inv.secretFor(ok.tokenId))).toBeUndefined()
    vi.setSystemTime(now - 30_000)
    expect(codeOf(() => inv.secretFor(ok.tokenId))).toBeUndefined()
    const week = await inv.create({ addresses: [], ttlMs: MAX_TOKEN_TTL_MS })
    expect(codeOf(() => inv.secretFor(week.tokenId))).toBeUndefined()
  })

  it('no token is issued with a TTL over the 7-day maximum', async () => {
    expect(MAX_TOKEN_TTL_MS).toBe(7 * DAY)
    const inv = await invites()
    const err = await inv.create({ addresses: [], ttlMs: 365 * DAY }).catch((e: unknown) => e)
    expect(isKitsyncError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true)
  })
})
