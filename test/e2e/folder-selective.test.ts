import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { kitsyncJson, kitsyncOk, makeHome, makeTempDir, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Selective sync and local-only apply to shared folders as to collections: a folder's item name
 * is `_folder.NAME`. Real peers started through the CLI on loopback, real files; every wait has
 * a deadline, and "never arrives" is checked after a complete `sync now` round.
 */

const { peer, invite } = devicesOfTest()
const PEER_ARGS = [...NET, '--http-port', '0']
const WAIT = 20_000

const folderNames = async (home: string): Promise<string[]> =>
  (await kitsyncJson<{ name: string }[]>(home, ['folder', 'list', '--json'])).map((f) => f.name).sort()

describe('folders under selective sync', () => {
  it(
    'a device whose items leave a folder out gets none of it until it adds the folder; a local-only folder never leaves its device',
    { timeout: 90_000 },
    async () => {
      const [ha, hb] = [await makeHome(), await makeHome()]
      await peer(ha, PEER_ARGS)
      await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', ...NET])
      await peer(hb, [...PEER_ARGS, '--items', 'notes'])

      // On A: a private folder, local-only before it is added; a shared one with a file; a record B wants.
      await kitsyncOk(ha, ['items', 'add', '_folder.priv', '--local-only'])
      const [da, dp] = [join(await makeTempDir('ks-fsel-'), 'sim'), join(await makeTempDir('ks-fsel-'), 'priv')]
      await kitsyncOk(ha, ['folder', 'add', dp, '--name', 'priv', '--json'])
      await writeFile(join(dp, 'secret.txt'), 'only on A\n')
      await kitsyncOk(ha, ['folder', 'add', da, '--name', 'sim', '--json'])
      await writeFile(join(da, 's1.yaml'), 'steps: 1\n')
      await waitUntil(async () => ((await folderNames(ha)).length === 2 ? true : undefined), WAIT, 'both folders on A')
      await kitsyncOk(ha, ['set', 'notes', 'n1', '"after the folders"'])

      await waitUntil(async () => ((await kitsyncJson<unknown>(hb, ['get', 'notes', 'n1'])) === 'after the folders' ? true : undefined), WAIT, 'notes on B')
      const round = await kitsyncJson<{ peers: { reached: boolean; complete: boolean }[] }>(hb, ['sync', 'now', '--timeout', '10'])
      expect(round.peers).toEqual([expect.objectContaining({ reached: true, complete: true })])
      expect(await folderNames(hb), 'B holds no folder its items leave out').toEqual([])
      const items = await kitsyncJson<{ collections?: { name: string; reason: string }[] }>(hb, ['items'])
      expect(JSON.stringify(items)).not.toContain('_folder.priv')

      // B adds the shared folder to its items at run time: it arrives, and its file once placed.
      await kitsyncOk(hb, ['items', 'add', '_folder.sim'])
      await waitUntil(async () => ((await folderNames(hb)).includes('sim') ? true : undefined), WAIT, 'the folder sim on B')
      const db = join(await makeTempDir('ks-fsel-b-'), 'sim')
      await kitsyncOk(hb, ['folder', 'add', db, '--name', 'sim', '--json'])
      await waitUntil(
        async () => ((await readFile(join(db, 's1.yaml'), 'utf8').catch(() => undefined)) === 'steps: 1\n' ? true : undefined),
        WAIT,
        's1.yaml on B',
      )

      // Even with every collection in B's items, the local-only folder stays on A.
      await kitsyncOk(hb, ['items', 'set', '*'])
      const again = await kitsyncJson<{ peers: { reached: boolean; complete: boolean }[] }>(hb, ['sync', 'now', '--timeout', '10'])
      expect(again.peers).toEqual([expect.objectContaining({ reached: true, complete: true })])
      expect(await folderNames(hb)).toEqual(['sim'])
    },
  )
})
