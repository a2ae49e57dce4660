import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startPeer } from '../../dist/index.js'
import { placesFolders } from '../../dist/daemon/folder-lazy.js'
import { cleanup, kitsyncJson, makeHome, makeTempDir, waitUntil } from '../helpers/cli.js'

/**
 * A peer that places no folder starts without the folder code (daemon/folder-lazy.ts: ~8 MB of
 * an idle peer's RSS) and loads it at the first folder call; one with a placed folder starts it
 * at once. Real peer in this process (control socket, loopback), real CLI processes, real files.
 */

type Peer = Awaited<ReturnType<typeof startPeer>>
const peers: Peer[] = []
afterAll(async () => {
  for (const p of peers) await p.stop().catch(() => undefined)
  await cleanup()
})

const start = async (home: string): Promise<Peer> => {
  const peer = await startPeer({ home, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, http: false })
  peers.push(peer)
  return peer
}

describe('placesFolders (HOME/folders.json)', () => {
  it('is false only for a missing file or one that places nothing', async () => {
    const dir = await makeTempDir('ks-placed-')
    const file = join(dir, 'folders.json')
    expect(await placesFolders(file)).toBe(false)
    await writeFile(file, JSON.stringify({ folders: {} }))
    expect(await placesFolders(file)).toBe(false)
    await writeFile(file, JSON.stringify({ folders: { docs: { path: '/x', placedAt: 1 } } }))
    expect(await placesFolders(file)).toBe(true)
    // Damaged or unreadable: the service starts and reports it.
    await writeFile(file, '{"folders": {')
    expect(await placesFolders(file)).toBe(true)
    await writeFile(file, JSON.stringify({ folders: 'x' }))
    expect(await placesFolders(file)).toBe(true)
    const notAFile = join(dir, 'dir.json')
    await mkdir(notAFile)
    expect(await placesFolders(notAFile)).toBe(true)
  })
})

describe('a peer loads its folder code when it needs it', () => {
  it('starts without it, loads it at the first folder call, and at once after a restart with a placed folder', async () => {
    const home = await makeHome()
    let peer = await start(home)
    expect(peer.folders?.started).toBe(false)

    // The first folder call starts the service; the folder is watched and its file captured.
    const dir = join(await makeTempDir('ks-lazy-'), 'docs')
    await mkdir(dir)
    await writeFile(join(dir, 'a.txt'), 'hello\n')
    const added = await kitsyncJson<{ name: string; state: string }>(home, ['folder', 'add', dir, '--name', 'docs'])
    expect(added).toMatchObject({ name: 'docs', state: 'watching' })
    expect(peer.folders?.started).toBe(true)
    const listed = await waitUntil(
      async () => {
        const list = await kitsyncJson<{ name: string; state: string; files: number }[]>(home, ['folder', 'list'])
        return list.find((f) => f.name === 'docs' && f.files === 1)
      },
      20_000,
      'the folder lists its file',
    )
    expect(listed.state).toBe('watching')

    await peer.stop()
    peers.splice(peers.indexOf(peer), 1)
    peer = await start(home)
    // Placed here: started with the peer, its file still known.
    expect(peer.folders?.started).toBe(true)
    const again = await kitsyncJson<{ name: string; state: string; files: number }[]>(home, ['folder', 'list'])
    expect(again).toMatchObject([{ name: 'docs', state: 'watching', files: 1 }])
  })

  it('loads it ahead, without starting the service, when the workspace shares a folder not placed here', async () => {
    const home = await makeHome()
    let peer = await start(home)
    const dir = join(await makeTempDir('ks-lazy-'), 'docs')
    await mkdir(dir)
    await writeFile(join(dir, 'a.txt'), 'hello\n')
    await kitsyncJson(home, ['folder', 'add', dir, '--name', 'docs'])
    await kitsyncJson(home, ['folder', 'remove', 'docs'])
    await peer.stop()
    peers.splice(peers.indexOf(peer), 1)
    // Placed nowhere here, but the workspace holds the folder: `folder add` may follow.
    peer = await start(home)
    expect(peer.folders?.started).toBe(false)
    await waitUntil(async () => (peer.folders?.preloaded === true ? true : undefined), 20_000, 'the folder code loaded ahead')
    expect(peer.folders?.started).toBe(false)
    const list = await kitsyncJson<{ name: string; state: string }[]>(home, ['folder', 'list'])
    expect(list.map((f) => f.name)).toEqual(['docs'])
    expect(peer.folders?.started).toBe(true)
  })

  it('does not load it ahead for a workspace without folders', async () => {
    const home = await makeHome()
    const peer = await start(home)
    await kitsyncJson(home, ['set', 'notes', 'n1', '"a record"'])
    expect(peer.folders?.started).toBe(false)
    expect(peer.folders?.preloaded).toBe(false)
  })
})
