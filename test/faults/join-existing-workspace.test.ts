import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodeToken, encodeToken } from '../../dist/protocol/pair-token.js'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, statOrUndefined, stopProc } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * `join` into a home folder that holds another workspace merged it in silently, and its records
 * reached every member (issue 19, item 13); a failed join left a half-made workspace behind.
 */

const { peer, invite, forget } = devicesOfTest()
const JOIN_TIMEOUT_MS = 40_000

interface Info {
  workspaceId: string
}

async function workspaceId(home: string): Promise<string> {
  return (JSON.parse(await readFile(join(home, 'workspace.json'), 'utf8')) as { id: string }).id
}

async function names(home: string): Promise<string[]> {
  return (await readdir(home)).sort()
}

describe('join into a home folder that holds another workspace', () => {
  it('refuses with WORKSPACE_EXISTS, says how to proceed, and nothing of either side moves', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(ha, ['set', 'notes', 'a', '{"from":"a"}'])
    await kitsyncOk(hb, ['set', 'private', 'diary', '{"text":"b only"}'])
    const before = await workspaceId(hb)
    await peer(ha)
    const token = await invite(ha)
    const r = await kitsync(hb, ['join', token, '--name', 'b', ...NET], { timeoutMs: JOIN_TIMEOUT_MS })
    const message = expectCliError(r, 'WORKSPACE_EXISTS', 4)
    expect(message).toMatch(/--home/)
    expect(message).toMatch(/--replace/)
    expect(await workspaceId(hb)).toBe(before)
    expect(await kitsyncJson(hb, ['get', 'private', 'diary'])).toEqual({ text: 'b only' })
    expectCliError(await kitsync(hb, ['get', 'notes', 'a']), 'UNKNOWN_COLLECTION', 3)
    expectCliError(await kitsync(ha, ['get', 'private', 'diary']), 'UNKNOWN_COLLECTION', 3)
    expect((await kitsyncJson<{ name: string }[]>(ha, ['peers', '--json'])).map((d) => d.name)).not.toContain('b')
    // The token was not used up: a fresh home joins with it.
    await kitsyncOk(await makeHome(), ['join', token, '--name', 'c', ...NET], { timeoutMs: JOIN_TIMEOUT_MS })
  })

  it('refuses the same through a running peer of that home', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(hb, ['set', 'private', 'diary', '{"text":"b only"}'])
    await peer(ha)
    await peer(hb)
    const r = await kitsync(hb, ['join', await invite(ha), '--name', 'b'], { timeoutMs: JOIN_TIMEOUT_MS })
    expectCliError(r, 'WORKSPACE_EXISTS', 4)
    expect(await kitsyncJson(hb, ['get', 'private', 'diary'])).toEqual({ text: 'b only' })
    expect((await kitsyncJson<{ name: string }[]>(ha, ['peers', '--json'])).map((d) => d.name)).not.toContain('b')
    // --replace needs the home's store: not while a peer runs it.
    expectCliError(await kitsync(hb, ['join', await invite(ha), '--replace'], { timeoutMs: JOIN_TIMEOUT_MS }), 'PEER_ALREADY_RUNNING', 4)
  })

  it('--replace keeps a backup export (0600) in the home, then joins in its place', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(ha, ['set', 'notes', 'a', '{"from":"a"}'])
    await kitsyncOk(hb, ['set', 'private', 'diary', '{"text":"b only"}'])
    const identity = await readFile(join(hb, 'identity.key'))
    const pa = await peer(ha)
    const out = await kitsyncJson<Info & { backup?: string }>(hb, ['join', await invite(ha), '--replace', '--name', 'b', ...NET], {
      timeoutMs: JOIN_TIMEOUT_MS,
    })
    expect(out.workspaceId).toBe(pa.started.workspaceId)
    expect(await workspaceId(hb)).toBe(pa.started.workspaceId)
    const backup = out.backup as string
    expect(backup.startsWith(join(hb, 'backup-'))).toBe(true)
    expect((await stat(backup)).mode & 0o777).toBe(0o600)
    const exported = JSON.parse(await readFile(backup, 'utf8')) as { format: string; collections: Record<string, Record<string, unknown>> }
    expect(exported.format).toBe('kitsync-export')
    expect(exported.collections.private?.diary).toEqual({ text: 'b only' })
    expect(await kitsyncJson(hb, ['get', 'notes', 'a'])).toEqual({ from: 'a' })
    expectCliError(await kitsync(hb, ['get', 'private', 'diary']), 'UNKNOWN_COLLECTION', 3)
    expectCliError(await kitsync(ha, ['get', 'private', 'diary']), 'UNKNOWN_COLLECTION', 3)
    expect((await kitsyncJson<{ name: string }[]>(ha, ['peers', '--json'])).map((d) => d.name)).toContain('b')
    // A new device identity: the old workspace's members trusted the old one. Nothing else is left over.
    expect(await readFile(join(hb, 'identity.key'))).not.toEqual(identity)
    expect((await names(hb)).filter((n) => n.startsWith('.replaced-'))).toEqual([])
  })

  it('a home made by an earlier plain command, with no data, still joins', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(ha, ['set', 'notes', 'a', '{"from":"a"}'])
    await kitsyncOk(hb, ['init'])
    await kitsyncOk(hb, ['list'])
    const pa = await peer(ha)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', ...NET], { timeoutMs: JOIN_TIMEOUT_MS })
    expect(await workspaceId(hb)).toBe(pa.started.workspaceId)
    expect(await kitsyncJson(hb, ['get', 'notes', 'a'])).toEqual({ from: 'a' })
  })
})

describe('a failed join', () => {
  it.each([
    ['refused (a forged token)', 'TOKEN_REFUSED', 8],
    ['unreachable (the inviter stopped)', 'PEER_UNREACHABLE', 7],
  ] as const)('%s leaves nothing behind in a new home, and only what was there in a used one', async (what, code, exit) => {
    const ha = await makeHome()
    const pa = await peer(ha)
    const real = decodeToken(await invite(ha))
    let token = encodeToken({ ...real, secret: new Uint8Array(32).fill(7) })
    if (what.startsWith('unreachable')) {
      token = encodeToken(real)
      await stopProc(pa.proc)
      forget(pa)
    }
    const fresh = await makeHome()
    const r1 = await kitsync(fresh, ['join', token, ...NET], { timeoutMs: JOIN_TIMEOUT_MS })
    expect(r1.stderr).toMatch(new RegExp(`^kitsync: ${code}: `))
    expect(r1.code).toBe(exit)
    expect(await statOrUndefined(fresh)).toBeUndefined()
    const used = await makeHome()
    await kitsyncOk(used, ['init'])
    const before = await names(used)
    const config = await readFile(join(used, 'workspace.json'), 'utf8')
    const r2 = await kitsync(used, ['join', token, ...NET], { timeoutMs: JOIN_TIMEOUT_MS })
    expect(r2.code).toBe(exit)
    expect(await names(used)).toEqual(before)
    expect(await readFile(join(used, 'workspace.json'), 'utf8')).toBe(config)
  })

  it('with --replace puts the old workspace back, next to its backup', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(hb, ['set', 'private', 'diary', '{"text":"b only"}'])
    const before = await names(hb)
    const config = await readFile(join(hb, 'workspace.json'), 'utf8')
    const identity = await readFile(join(hb, 'identity.key'))
    await peer(ha)
    const real = decodeToken(await invite(ha))
    const forged = encodeToken({ ...real, secret: new Uint8Array(32).fill(7) })
    expectCliError(await kitsync(hb, ['join', forged, '--replace', ...NET], { timeoutMs: JOIN_TIMEOUT_MS }), 'TOKEN_REFUSED', 8)
    const after = await names(hb)
    expect(after.filter((n) => !n.startsWith('backup-'))).toEqual(before)
    expect(after.filter((n) => n.startsWith('backup-'))).toHaveLength(1)
    expect(await readFile(join(hb, 'workspace.json'), 'utf8')).toBe(config)
    expect(await readFile(join(hb, 'identity.key'))).toEqual(identity)
    expect(await kitsyncJson(hb, ['get', 'private', 'diary'])).toEqual({ text: 'b only' })
  })
})
