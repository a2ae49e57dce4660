import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join as joinPath } from 'node:path'
import { describe, expect, it } from 'vitest'
import { kitsync, kitsyncJson, kitsyncOk, makeHome, type CliResult } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Several devices pairing with one inviter at the same moment, each with its own token, through
 * real CLI processes on loopback: every join succeeds (or is refused for a reason, never for a
 * clash between them), invites.json stays whole, and the device limit holds.
 */

const JOIN_TIMEOUT_MS = 90_000
const { peer } = devicesOfTest()

interface InvitesFile {
  invites: Record<string, { secret: string; expiresAt: number; usedAt?: number; usedBy?: string }>
}

async function founder(maxDevices: number): Promise<string> {
  const home = await makeHome()
  await kitsyncOk(home, ['init'])
  const config = JSON.parse(await readFile(joinPath(home, 'workspace.json'), 'utf8')) as Record<string, unknown>
  await writeFile(joinPath(home, 'workspace.json'), JSON.stringify({ ...config, maxDevices }))
  await peer(home, NET)
  return home
}

/** `count` tokens, asked for at the same moment (concurrent writes of invites.json). */
async function tokens(home: string, count: number): Promise<string[]> {
  const out = await Promise.all(Array.from({ length: count }, () => kitsyncJson<{ token: string }>(home, ['pair', '--json'])))
  return out.map((t) => t.token)
}

async function deviceId(home: string): Promise<string> {
  return (await kitsyncJson<{ deviceId: string }>(home, ['init', '--json'])).deviceId
}

describe('pairing several devices at once', () => {
  it('six devices join concurrently with their own tokens: all joined, invites.json intact', async () => {
    const N = 6
    const ha = await founder(N + 1)
    const issued = await tokens(ha, N)
    expect(new Set(issued).size).toBe(N)
    const homes = await Promise.all(Array.from({ length: N }, () => makeHome()))
    const results = await Promise.all(
      homes.map((home, i) => kitsync(home, ['join', issued[i] as string, '--name', `dev${i}`, '--json', ...NET], { timeoutMs: JOIN_TIMEOUT_MS })),
    )
    for (const r of results) expect(r.code, `${r.stdout}${r.stderr}`).toBe(0)
    for (const r of results) expect((JSON.parse(r.stdout) as { caughtUp: boolean }).caughtUp).toBe(true)

    const ids = await Promise.all(homes.map(deviceId))
    const file = JSON.parse(await readFile(joinPath(ha, 'invites.json'), 'utf8')) as InvitesFile
    const records = Object.values(file.invites)
    expect(records).toHaveLength(N)
    expect(records.every((r) => typeof r.secret === 'string' && typeof r.usedAt === 'number')).toBe(true)
    expect(records.map((r) => r.usedBy).sort()).toEqual([...ids].sort())
    // No temporary file of a write was left behind.
    expect((await readdir(ha)).filter((f) => f.endsWith('.tmp'))).toEqual([])

    const devices = await kitsyncJson<{ peerId: string; state: string; name: string }[]>(ha, ['devices', '--json'])
    for (const [i, id] of ids.entries()) expect(devices.find((d) => d.peerId === id)).toMatchObject({ state: 'trusted', name: `dev${i}` })
    expect(devices.filter((d) => d.state === 'trusted')).toHaveLength(N + 1)
    // A used token stays used, also after all this.
    const again = await kitsync(await makeHome(), ['join', issued[0] as string, ...NET])
    expect(again.code, again.stderr).toBe(8)
    expect(again.stderr).toContain('TOKEN_USED')
  })

  it('the device limit holds when more devices join at once than it allows', async () => {
    const ha = await founder(3) // the founder and two more
    const issued = await tokens(ha, 5)
    const homes = await Promise.all(issued.map(() => makeHome()))
    const results: CliResult[] = await Promise.all(homes.map((home, i) => kitsync(home, ['join', issued[i] as string, ...NET], { timeoutMs: JOIN_TIMEOUT_MS })))
    const joined = results.filter((r) => r.code === 0)
    const refused = results.filter((r) => r.code !== 0)
    expect(joined).toHaveLength(2)
    for (const r of refused) {
      expect(r.code, r.stderr).toBe(9)
      expect(r.stderr).toContain('DEVICE_LIMIT_EXCEEDED')
    }
    const devices = await kitsyncJson<{ state: string }[]>(ha, ['devices', '--json'])
    expect(devices.filter((d) => d.state === 'trusted')).toHaveLength(3)
    const file = JSON.parse(await readFile(joinPath(ha, 'invites.json'), 'utf8')) as InvitesFile
    expect(Object.values(file.invites).filter((r) => r.usedAt !== undefined)).toHaveLength(2)
  })
})
