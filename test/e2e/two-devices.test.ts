import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import { kitsyncJson, kitsyncOk, makeHome, startPeer, waitUntil } from '../helpers/cli.js'
import { devicesOfTest } from '../helpers/devices.js'

/**
 * Issue 23: two devices on one machine (README "Two devices on one machine"): each its own
 * --home and --listen port; `join --listen` is remembered, so a later `peer start` without
 * --listen listens there again. Real CLI processes on loopback.
 */

const { peer, peers, client, invite } = devicesOfTest()

/** A TCP port free on loopback right now. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('two devices on one machine', () => {
  it('join --listen is remembered for the next peer start, and the two devices sync', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, ['--listen', '/ip4/127.0.0.1/tcp/0'])
    const port = await freePort()
    const listen = `/ip4/127.0.0.1/tcp/${port}`
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'second', '--listen', listen, '--no-mdns'])
    const config = JSON.parse(await readFile(join(hb, 'workspace.json'), 'utf8')) as { listen?: string[] }
    expect(config.listen).toEqual([listen])

    // no --listen: the remembered address (not the default port 4771)
    const pb = await startPeer(hb, { isolate: false, args: ['--no-mdns', '--http-port', '0'] })
    peers.push(pb)
    const started = pb.started as unknown as { listen: string[] }
    expect(started.listen.some((a) => a.startsWith(`${listen}/`) || a === listen)).toBe(true)
    const status = await kitsyncJson<{ network?: { listen: string[] } }>(hb, ['status'])
    expect(JSON.stringify(status)).toContain(`/tcp/${port}`)

    const a = await client(ha)
    const b = await client(hb)
    await a.set('notes', 'n1', 'from the first device')
    await waitUntil(
      async () => (isDeepStrictEqual(await b.get('notes', 'n1').catch(() => undefined), 'from the first device') ? true : undefined),
      20_000,
      'the note on the second device',
    )
  })
})
