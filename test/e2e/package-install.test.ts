import { execFile } from 'node:child_process'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { cleanup, makeTempDir, REPO_ROOT } from '../helpers/cli.js'

/**
 * Issue 23: kitsync as a library from a tarball (README "Using kitsync as a library"): `npm
 * pack`, then install the tarball into a fresh project with no network (the dependencies come
 * from npm's local cache, pinned by a lockfile made from kitsync's own) and run the README's
 * example against a real store.
 */

const run = promisify(execFile)
const NPM_TIMEOUT_MS = 120_000
afterAll(cleanup)

interface LockEntry {
  dev?: boolean
}

/** Pack this checkout (without rebuilding dist: other tests run from it) and list the tarball. */
async function pack(dir: string): Promise<{ tarball: string; files: string[] }> {
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO_ROOT, timeout: NPM_TIMEOUT_MS })
  const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }]
  return { tarball: join(dir, info.filename), files: info.files.map((f) => f.path) }
}

/** An app project depending on the tarball, its lockfile holding kitsync's own production dependencies. */
async function appProject(dir: string, tarball: string): Promise<void> {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> }
  const lock = JSON.parse(await readFile(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }
  const dependencies = { kitsync: `file:${tarball}` }
  const packages: Record<string, unknown> = { '': { name: 'app', version: '1.0.0', dependencies } }
  for (const [path, entry] of Object.entries(lock.packages)) if (path.startsWith('node_modules/') && entry.dev !== true) packages[path] = entry
  packages['node_modules/kitsync'] = { version: pkg.version, resolved: `file:${tarball}`, dependencies: pkg.dependencies, bin: { kitsync: 'bin/kitsync.js' } }
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', dependencies }, null, 2))
  await writeFile(join(dir, 'package-lock.json'), JSON.stringify({ name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2))
  await writeFile(
    join(dir, 'example.js'),
    [
      "import { openWorkspace } from 'kitsync'",
      'const ws = await openWorkspace({ home: process.argv[2] })',
      "await ws.set('alerts', 'btc', { symbol: 'BTCUSD', above: 100000 })",
      "console.log(JSON.stringify(await ws.get('alerts', 'btc')))",
      'await ws.close()',
    ].join('\n') + '\n',
  )
}

describe('kitsync from a tarball', () => {
  it('npm pack holds dist, bin and dashboard and no tests; the tarball installs offline and works as a library and a CLI', async (ctx) => {
    const dir = await makeTempDir('ks-pack-')
    const { tarball, files } = await pack(dir)
    expect(files).toContain('dist/index.js')
    expect(files).toContain('dist/index.d.ts')
    expect(files).toContain('bin/kitsync.js')
    expect(files).toContain('dashboard/index.html')
    expect(files).toContain('package.json')
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('src/') || f.startsWith('bench'))).toEqual([])

    const app = join(dir, 'app')
    await mkdir(app)
    await appProject(app, tarball)
    const installed = await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app, timeout: NPM_TIMEOUT_MS }).catch(
      (err: { stderr?: string }) => err,
    )
    if ('stderr' in installed && /ENOTCACHED/.test(installed.stderr ?? '')) {
      console.warn(`SKIPPED the offline install of ${tarball}: npm's cache lacks a dependency (run npm ci in the checkout once)`)
      ctx.skip()
    }
    expect(installed).toHaveProperty('stdout')

    const home = join(dir, 'home')
    const { stdout } = await run(process.execPath, ['example.js', home], { cwd: app, timeout: 30_000 })
    expect(JSON.parse(stdout)).toEqual({ symbol: 'BTCUSD', above: 100000 })
    const cli = await run(process.execPath, [join(app, 'node_modules', 'kitsync', 'bin', 'kitsync.js'), '--home', home, 'get', 'alerts', 'btc', '--json'], {
      timeout: 30_000,
    })
    expect(JSON.parse(cli.stdout)).toEqual({ symbol: 'BTCUSD', above: 100000 })
  })
})
