import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, makeTempDir, waitUntil } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * `kitsync folder set NAME --include/--exclude/--no-exclude/--max-file-size` while both peers
 * run: the definition syncs and every device where the folder is placed rescans under it at
 * once (before, a running engine kept the globs it started with). Real peers through the CLI on
 * loopback, real files; every wait has a deadline.
 */

const { peer, invite } = devicesOfTest()
const PEER_ARGS = [...NET, '--http-port', '0']
const WAIT = 20_000

interface StatusView {
  files: { path: string; state: string }[]
}

const contentOf = async (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined)

async function stateOf(home: string, path: string): Promise<string | undefined> {
  const view = await kitsyncJson<StatusView>(home, ['folder', 'status', 'sim', '--json'])
  return view.files.find((f) => f.path === path)?.state
}

describe('folder set: globs changed while the peers run', () => {
  it('clearing an exclude on B brings A’s excluded file to B; a new exclude on A stops a file’s edits at A', { timeout: 120_000 }, async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await peer(ha, PEER_ARGS)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'b', ...NET])
    await peer(hb, PEER_ARGS)
    const [da, db] = [join(await makeTempDir('ks-fset-a-'), 'sim'), join(await makeTempDir('ks-fset-b-'), 'sim')]
    await kitsyncOk(ha, ['folder', 'add', da, '--name', 'sim', '--exclude', '*.log', '--json'])
    await writeFile(join(da, 'run.log'), 'step 1\n')
    await writeFile(join(da, 'a.yaml'), 'a: 1\n')
    await waitUntil(async () => ((await stateOf(ha, 'run.log')) === 'local only' ? true : undefined), WAIT, 'run.log local only on A (excluded)')
    await waitUntil(
      async () => ((await kitsyncJson<{ name: string }[]>(hb, ['folder', 'list', '--json'])).some((f) => f.name === 'sim') ? true : undefined),
      WAIT,
      'the folder on B',
    )
    await kitsyncOk(hb, ['folder', 'add', db, '--name', 'sim', '--json'])
    await waitUntil(async () => ((await contentOf(join(db, 'a.yaml'))) === 'a: 1\n' ? true : undefined), WAIT, 'a.yaml on B')
    expect(await contentOf(join(db, 'run.log')), 'an excluded file stays on A').toBeUndefined()

    // Bad input: nothing to change, an unknown folder. Nothing changes.
    expectCliError(await kitsync(hb, ['folder', 'set', 'sim']), 'INVALID_ARGUMENT', 2)
    expectCliError(await kitsync(hb, ['folder', 'set', 'nosuch', '--exclude', 'x']), 'NOT_FOUND', 3)

    // B clears the exclude list: the definition reaches A, whose running engine rescans and captures run.log.
    const set = await kitsyncJson<{ name: string; include: string[]; exclude: string[]; maxFileSize: number }>(hb, [
      'folder',
      'set',
      'sim',
      '--no-exclude',
      '--json',
    ])
    expect(set).toEqual({ name: 'sim', include: [], exclude: [], maxFileSize: 1024 * 1024 })
    await waitUntil(async () => ((await contentOf(join(db, 'run.log'))) === 'step 1\n' ? true : undefined), WAIT, 'run.log on B once the exclude is gone')
    const listed = await kitsyncJson<{ name: string; exclude: string[] }[]>(ha, ['folder', 'list', '--json'])
    expect(listed.find((f) => f.name === 'sim')?.exclude, 'A lists the synced definition').toEqual([])

    // A now leaves a.yaml out: its edit stays on A, while a later file still syncs.
    const text = await kitsyncOk(ha, ['folder', 'set', 'sim', '--exclude', 'a.yaml', '--max-file-size', '2M'])
    expect(text).toContain('exclude a.yaml')
    await waitUntil(async () => ((await stateOf(ha, 'a.yaml')) === 'excluded' ? true : undefined), WAIT, 'a.yaml excluded on A')
    await writeFile(join(da, 'a.yaml'), 'a: 2 (stays on A)\n')
    await writeFile(join(da, 'b.yaml'), 'b: 1\n')
    await waitUntil(async () => ((await contentOf(join(db, 'b.yaml'))) === 'b: 1\n' ? true : undefined), WAIT, 'b.yaml on B')
    await kitsyncOk(hb, ['sync', 'now', '--timeout', '10'])
    expect(await contentOf(join(db, 'a.yaml')), 'the excluded file keeps its last synced content on B').toBe('a: 1\n')
    await waitUntil(async () => ((await stateOf(hb, 'a.yaml')) === 'excluded' ? true : undefined), WAIT, 'a.yaml excluded on B too')
  })
})
