import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { COMMAND_TIMEOUT_MS, kitsyncJson, kitsyncOk, makeHome, makeTempDir, spawnKitsync } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * `kitsync join ks1...` put the token in the process list, readable by every local user for
 * the length of the join (issue 19, item 9): it can come from standard input or a file.
 */

const { peer, invite } = devicesOfTest()
const JOIN_TIMEOUT_MS = 40_000

/** Start `kitsync join` and read its command line in /proc while it runs; then wait for it to end. */
async function joinAndReadArgv(home: string, args: string[], input?: string): Promise<{ argv: string; code: number | null; stderr: string }> {
  const proc = spawnKitsync(home, ['join', ...args, '--name', 'b', ...NET], input === undefined ? {} : { input })
  // spawn returns once node has been exec'd: this is the joiner's own command line.
  const argv = (await readFile(`/proc/${proc.pid}/cmdline`, 'utf8')).split('\0').join(' ')
  expect(proc.exitInfo, 'the joiner was still running when its command line was read').toBeUndefined()
  const exit = await proc.waitForExit(JOIN_TIMEOUT_MS)
  return { argv, code: exit.code, stderr: proc.stderr }
}

describe.skipIf(process.platform !== 'linux')('join without the token in the process list', () => {
  it.each([
    ['standard input (join -)', 'stdin'],
    ['a file (join --token-file F)', 'file'],
  ])('takes the token from %s, joins end to end, and the argv never holds it', async (_what, how) => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    await kitsyncOk(ha, ['set', 'notes', 'hello', '{"text":"from a"}'])
    await peer(ha)
    const token = await invite(ha)
    let r: { argv: string; code: number | null; stderr: string }
    if (how === 'stdin') {
      r = await joinAndReadArgv(hb, ['-'], `${token}\n`)
    } else {
      const file = join(await makeTempDir('ks-tok-'), 'token.txt')
      await writeFile(file, `${token}\n`, { mode: 0o600 })
      r = await joinAndReadArgv(hb, ['--token-file', file])
    }
    expect(r.argv).toContain('join')
    expect(r.argv).not.toContain(token)
    expect(r.argv).not.toContain(token.slice(0, 20))
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' })
    // End to end: b is a member and has a's data.
    expect(await kitsyncJson(hb, ['get', 'notes', 'hello'], { timeoutMs: COMMAND_TIMEOUT_MS })).toEqual({ text: 'from a' })
    const devices = await kitsyncJson<{ name: string }[]>(ha, ['peers', '--json'])
    expect(devices.map((d) => d.name)).toContain('b')
  })

  it('says so in --help, and refuses a token given twice or not at all', async () => {
    const help = await kitsyncOk(undefined, ['join', '--help'])
    expect(help).toContain('--token-file')
    expect(help).toMatch(/standard input/)
    const home = await makeHome()
    const none = await spawnKitsync(home, ['join']).waitForExit(COMMAND_TIMEOUT_MS)
    expect(none.code).toBe(2)
    const file = join(await makeTempDir('ks-tok-'), 'token.txt')
    await writeFile(file, 'ks1x\n')
    const twice = spawnKitsync(home, ['join', 'ks1x', '--token-file', file])
    expect((await twice.waitForExit(COMMAND_TIMEOUT_MS)).code).toBe(2)
    expect(twice.stderr).toMatch(/^kitsync: INVALID_ARGUMENT: /)
  })
})
