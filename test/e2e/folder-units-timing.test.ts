import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { kitsyncJson, kitsyncOk, makeHome, makeTempDir, waitUntil } from '../helpers/cli.js'
import { devicesOfTest } from '../helpers/devices.js'

/**
 * The folder engine over the unit exchange: a folder added on two connected peers (CLI processes
 * on loopback) at the same time, each side before the other's definition arrived, so the
 * collection is made on both mid-session, and files written at once. Every wait has a deadline.
 */

const { peer, invite } = devicesOfTest()
const PEER_ARGS = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http-port', '0']
const WAIT = 20_000

const contentOf = async (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined)
const waitFor = (path: string, text: string, what: string): Promise<true> =>
  waitUntil(async () => ((await contentOf(path)) === text ? true : undefined), WAIT, what)

describe('a folder added on two connected peers at once', () => {
  it('files written on either side right after the add reach the other', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, PEER_ARGS)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    await peer(hb, PEER_ARGS)
    const da = join(await makeTempDir('ks-ua-'), 'sim2')
    const db = join(await makeTempDir('ks-ub-'), 'sim2')
    const [addedA, addedB] = await Promise.all([
      kitsyncJson<{ state: string }>(ha, ['folder', 'add', da, '--name', 'sim2', '--json']),
      kitsyncJson<{ state: string }>(hb, ['folder', 'add', db, '--name', 'sim2', '--json']),
    ])
    expect([addedA.state, addedB.state]).toEqual(['watching', 'watching'])
    await Promise.all([writeFile(join(da, 'from-a.txt'), 'written on a\n'), writeFile(join(db, 'from-b.txt'), 'written on b\n')])
    await waitFor(join(db, 'from-a.txt'), 'written on a\n', 'the file of A on B')
    await waitFor(join(da, 'from-b.txt'), 'written on b\n', 'the file of B on A')
  })
})
