import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { COMMAND_TIMEOUT_MS, expectCliError, fileMode, kitsync, kitsyncOk, makeHome, makeTempDir, Proc, REPO_ROOT } from '../helpers/cli.js'
import { devicesOfTest } from '../helpers/devices.js'

/**
 * Issue 23, rough edges: `kitsync pair` into a pipe or a file printed the QR code with ANSI
 * escape codes (a file full of `\x1b[47m`), and `pair --png FILE` wrote the PNG of a live token
 * with the process umask (0644 under the usual 022), readable by every local user. Real
 * processes: a peer started with the CLI on loopback, `pair` run through it.
 */

const { peer } = devicesOfTest()
const ESC = '\x1b'

/** Run the CLI's runCli in a node process whose umask is 022 (as a host app's would be), not bin/'s 077. */
async function runWithUmask022(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = [
    'process.umask(0o022)',
    `await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'polyfill.js'))})`,
    `const { runCli } = await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'cli', 'main.js'))})`,
    `const { processIO } = await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'cli', 'node-io.js'))})`,
    `process.exitCode = await runCli(JSON.parse(process.argv[1]), processIO())`,
  ].join('\n')
  const proc = new Proc(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(args)])
  const info = await proc.waitForExit(COMMAND_TIMEOUT_MS)
  return { code: info.code, stdout: proc.stdout, stderr: proc.stderr }
}

describe('pair prints a QR code a pipe or file can hold', () => {
  it('stdout not a terminal: plain text, no escape codes', async () => {
    const home = await makeHome()
    await peer(home)
    const out = await kitsyncOk(home, ['pair'])
    expect(out.includes(ESC), JSON.stringify(out.slice(0, 200))).toBe(false)
    expect(out).toMatch(/[\u2580\u2584\u2588]/) // the QR code is still there, in block characters
    expect(out).toMatch(/kitsync join \S+/)
  })

  it('--qr ascii|ansi|none chooses; anything else is INVALID_ARGUMENT', async () => {
    const home = await makeHome()
    await peer(home)
    const ascii = await kitsyncOk(home, ['pair', '--qr', 'ascii'])
    expect(ascii.includes(ESC)).toBe(false)
    expect(ascii).toMatch(/[\u2580\u2584\u2588]/)
    const ansi = await kitsyncOk(home, ['pair', '--qr', 'ansi'])
    expect(ansi).toContain(`${ESC}[`)
    const none = await kitsyncOk(home, ['pair', '--qr', 'none'])
    expect(none).not.toMatch(/[\u2580\u2584\u2588]/)
    expect(none.includes(ESC)).toBe(false)
    expect(none).toMatch(/QR code not shown/)
    expect(none).toMatch(/kitsync join \S+/)
    expect(expectCliError(await kitsync(home, ['pair', '--qr', 'sixel']), 'INVALID_ARGUMENT', 2)).toMatch(/--qr/)
  })

  it('--png writes the token image 0600, also under umask 022 and over an existing 0644 file', async () => {
    const home = await makeHome()
    await peer(home)
    const dir = await makeTempDir()
    const fresh = join(dir, 'fresh.png')
    const r = await runWithUmask022(['--home', home, 'pair', '--png', fresh])
    expect(r.code, r.stderr).toBe(0)
    expect((await fileMode(fresh)).toString(8)).toBe('600')
    expect((await readFile(fresh)).subarray(0, 8).toString('latin1')).toBe('\x89PNG\r\n\x1a\n')
    const old = join(dir, 'old.png')
    await writeFile(old, 'old')
    await chmod(old, 0o644)
    const again = await runWithUmask022(['--home', home, 'pair', '--png', old, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect((await fileMode(old)).toString(8)).toBe('600')
  })
})
