import { spawn } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { join as joinPath } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Workspace } from '../../dist/index.js'
import { CLI, expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/** Device trust with real peers on loopback: revocation, device limit, audit log. */

const DEADLINE = 20_000
const { peer, client, invite, forget, peers } = devicesOfTest()

async function has(ws: Workspace, collection: string, key: string): Promise<boolean> {
  return (await ws.get(collection, key).catch(() => undefined)) !== undefined
}

describe('revocation', () => {
  it('cuts a revoked device off everywhere, for good, and logs it', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    const pa = await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'phone', ...NET])
    await kitsyncOk(hc, ['join', await invite(ha), '--name', 'laptop', ...NET])
    const pb = await peer(hb)
    await peer(hc)
    const [a, b, c] = [await client(ha), await client(hb), await client(hc)]
    await b.set('notes', 'before', 1)
    await waitUntil(async () => ((await has(c, 'notes', 'before')) ? true : undefined), DEADLINE, 'C to get B\u2019s note')

    // C revokes B; A learns it through sync and drops B as well.
    const revoked = await kitsyncJson<{ peerId: string; state: string }>(hc, ['revoke', 'phone', '--reason', 'lost', '--json'])
    expect(revoked.state).toBe('revoked')
    await pa.proc.waitForLine((l) => l.includes('"device:revoked"'), DEADLINE, 'A to hear of the revocation')
    const bId = revoked.peerId
    await waitUntil(
      async () => {
        const devices = await kitsyncJson<{ peerId: string; state: string }[]>(ha, ['peers', '--json'])
        return devices.find((d) => d.peerId === bId)?.state !== 'connected' ? true : undefined
      },
      DEADLINE,
      'A to drop its connection to B',
    )
    // A cuts B off (or refuses its redial, telling it it is revoked): counted as a refused
    // connection, and B is not listed as connected again.
    await waitUntil(
      async () =>
        ((await kitsyncJson<{ network?: { refusedConnections: number } }>(ha, ['status', '--json'])).network?.refusedConnections ?? 0) > 0 ? true : undefined,
      DEADLINE,
      'A to refuse B\u2019s redial',
    )
    const afterRedial = await kitsyncJson<{ peerId: string; state: string }[]>(ha, ['peers', '--json'])
    expect(afterRedial.find((d) => d.peerId === bId)?.state).not.toBe('connected')
    // What B writes now reaches nobody; what A writes does not reach B.
    await b.set('notes', 'after', 2)
    await a.set('notes', 'secret-after', 3)
    await waitUntil(async () => ((await has(c, 'notes', 'secret-after')) ? true : undefined), DEADLINE, 'C to get A\u2019s note')
    expect(await has(b, 'notes', 'secret-after')).toBe(false)
    expect(await has(a, 'notes', 'after')).toBe(false)
    expect(await has(c, 'notes', 'after')).toBe(false)

    // Every member lists B as revoked, and the audit log says who did it.
    for (const home of [ha, hc]) {
      const devices = await kitsyncJson<{ peerId: string; state: string }[]>(home, ['devices', '--json'])
      expect(devices.find((d) => d.peerId === bId)?.state).toBe('revoked')
    }
    const log = (await kitsyncOk(ha, ['log', '--json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; peer?: string })
    expect(log.filter((e) => e.type === 'device-joined').map((e) => e.peer)).toContain(bId)
    expect(log.some((e) => e.type === 'device-revoked' && e.peer === bId)).toBe(true)

    // The workspace key was rotated: A and C share the new epoch, B never got it.
    const ring = async (home: string): Promise<{ current: number; keys: Record<string, string> }> =>
      JSON.parse(await readFile(joinPath(home, 'keys.json'), 'utf8')) as { current: number; keys: Record<string, string> }
    await waitUntil(async () => ((await ring(ha)).current === 2 ? true : undefined), DEADLINE, 'A to receive the new key epoch')
    const [ka, kb, kc] = [await ring(ha), await ring(hb), await ring(hc)]
    expect(kc.current).toBe(2)
    expect(ka.keys['2']).toBe(kc.keys['2'])
    expect(kb.current).toBe(1)
    expect(kb.keys['2']).toBeUndefined()
    expect(kb.keys['1']).toBe(ka.keys['1'])
    expect((await stat(joinPath(ha, 'keys.json'))).mode & 0o777).toBe(0o600)
    expect(log.length).toBeGreaterThan(0)

    // Coming back with a fresh token on the same identity is refused.
    await stopProc(pb.proc)
    forget(pb)
    forget(b)
    await b.close()
    expectCliError(await kitsync(hb, ['join', await invite(ha), ...NET]), 'DEVICE_REVOKED', 9)
  })

  it('revoking through the library API marks the device revoked and leaves one trusted device', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'tablet', ...NET])
    const a = await client(ha)
    const bId = (await kitsyncJson<{ deviceId: string }>(hb, ['init', '--json'])).deviceId
    await a.revoke('tablet')
    const devices = await a.devices()
    expect(devices.find((d) => d.peerId === bId)?.state).toBe('revoked')
    expect(devices.filter((d) => d.state === 'trusted')).toHaveLength(1)
  })
})

describe('device limit', () => {
  it('refuses a join beyond maxDevices with DEVICE_LIMIT_EXCEEDED', async () => {
    const [ha, hb, hc] = [await makeHome(), await makeHome(), await makeHome()]
    await kitsyncOk(ha, ['init'])
    const config = JSON.parse(await readFile(joinPath(ha, 'workspace.json'), 'utf8')) as Record<string, unknown>
    await writeFile(joinPath(ha, 'workspace.json'), JSON.stringify({ ...config, maxDevices: 2 }))
    await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), ...NET])
    const r = await kitsync(hc, ['join', await invite(ha), ...NET])
    expectCliError(r, 'DEVICE_LIMIT_EXCEEDED', 9)
    const devices = await kitsyncJson<{ state: string }[]>(ha, ['devices', '--json'])
    expect(devices).toHaveLength(2)
    // Revoking one makes room again.
    await kitsyncOk(ha, ['revoke', (await kitsyncJson<{ deviceId: string }>(hb, ['init', '--json'])).deviceId])
    await kitsyncOk(hc, ['join', await invite(ha), ...NET])
  })
})

describe('secrets', () => {
  it('keeps key material in 0600 files and out of every log line and --json output', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    const pa = await peer(ha)
    const pairOut = await kitsyncOk(ha, ['pair', '--json'])
    const token = (JSON.parse(pairOut) as { token: string }).token
    const joinOut = await kitsyncOk(hb, ['join', token, '--json', ...NET])
    const pb = await peer(hb)
    const outputs = [joinOut]
    for (const home of [ha, hb]) {
      for (const args of [['status', '--json'], ['devices', '--json'], ['log', '--json'], ['peers', '--json'], ['export'], ['list', '--json'], ['status']]) {
        const r = await kitsync(home, args)
        outputs.push(r.stdout, r.stderr)
      }
    }
    await stopProc(pa.proc)
    await stopProc(pb.proc)
    peers.splice(0)
    outputs.push(pa.proc.stdout, pa.proc.stderr, pb.proc.stdout, pb.proc.stderr)
    const all = outputs.join('\n')

    const secrets: string[] = []
    for (const home of [ha, hb]) {
      const key = await readFile(joinPath(home, 'identity.key'))
      // The Ed25519 private key is the 32 bytes after the protobuf header; look for every encoding of it.
      const raw = key.subarray(key.length - 64, key.length - 32)
      secrets.push(key.toString('hex'), key.toString('base64'), raw.toString('hex'), raw.toString('base64'), raw.toString('base64url'))
      expect((await stat(joinPath(home, 'identity.key'))).mode & 0o777).toBe(0o600)
      expect((await stat(joinPath(home, 'workspace.json'))).mode & 0o777).toBe(0o600)
    }
    const invites = JSON.parse(await readFile(joinPath(ha, 'invites.json'), 'utf8')) as { invites: Record<string, { secret: string }> }
    expect((await stat(joinPath(ha, 'invites.json'))).mode & 0o777).toBe(0o600)
    for (const inv of Object.values(invites.invites)) secrets.push(inv.secret, Buffer.from(inv.secret, 'hex').toString('base64url'))
    for (const home of [ha, hb]) {
      const ring = JSON.parse(await readFile(joinPath(home, 'keys.json'), 'utf8')) as { keys: Record<string, string> }
      expect((await stat(joinPath(home, 'keys.json'))).mode & 0o777).toBe(0o600)
      for (const key of Object.values(ring.keys)) secrets.push(key, Buffer.from(key, 'hex').toString('base64'))
    }
    expect(secrets.length).toBeGreaterThan(10)
    for (const secret of secrets) expect(all.includes(secret), 'key material in the output').toBe(false)
  })
})

describe('new-device confirmation', () => {
  async function pairWithConfirm(answer: string): Promise<{ joinCode: string; shownCode: string; join: { code: number | null; stderr: string } }> {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha)
    // `pair --confirm` talks to the running peer and asks on stdin once a device proved the token.
    const pair = spawn(process.execPath, [CLI, '--home', ha, 'pair', '--confirm', '--json'], { stdio: ['pipe', 'pipe', 'pipe'] })
    const lines = createInterface({ input: pair.stdout })
    const events: Record<string, unknown>[] = []
    const next = (): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('pair printed nothing in time')), DEADLINE)
        lines.once('line', (l) => {
          clearTimeout(t)
          const v = JSON.parse(l) as Record<string, unknown>
          events.push(v)
          resolve(v)
        })
      })
    const { token } = (await next()) as { token: string }
    const join = kitsync(hb, ['join', token, '--name', 'new-phone', ...NET])
    const pending = await next()
    expect(pending.event).toBe('pairing:pending')
    expect(pending.name).toBe('new-phone')
    pair.stdin.write(answer + '\n')
    const joined = await join
    pair.kill('SIGTERM')
    const code = /confirmation code: (\d{6})/.exec(joined.stderr)?.[1] ?? ''
    return { joinCode: code, shownCode: String(pending.code), join: joined }
  }

  it('shows the same code on both screens and admits the device once approved', async () => {
    const r = await pairWithConfirm('y')
    expect(r.joinCode).toMatch(/^\d{6}$/)
    expect(r.shownCode).toBe(r.joinCode)
    expect(r.join.code).toBe(0)
  })

  it('refuses the device when the inviter says no', async () => {
    const r = await pairWithConfirm('n')
    expect(r.shownCode).toBe(r.joinCode)
    expect(r.join.code).toBe(8)
    expect(r.join.stderr.trim().split('\n').at(-1)).toMatch(/^kitsync: TOKEN_REFUSED: /)
  })
})
