/**
 * A real Prometheus scrapes a real peer with the example config of docs/prometheus.yml (its
 * token path and target set to the test's peer): the config passes promtool, the target is up,
 * and the peer's kitsync_ series are in Prometheus. Needs Debian's `prometheus` package
 * (apt-get install prometheus); skipped, saying so, without it. Everything is on loopback.
 */
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { kitsyncJson, kitsyncOk, makeHome, makeTempDir, Proc, REPO_ROOT, waitUntil } from '../helpers/cli.js'
import { devicesOfTest } from '../helpers/devices.js'
import { announceSkip } from '../helpers/faults.js'

const PROMETHEUS = '/usr/bin/prometheus'
const PROMTOOL = '/usr/bin/promtool'
const skip = announceSkip(
  'test/e2e/prometheus.test.ts',
  existsSync(PROMETHEUS) && existsSync(PROMTOOL) ? undefined : `no ${PROMETHEUS} or ${PROMTOOL} (apt-get install prometheus)`,
)

const { peer } = devicesOfTest()

/** A port free on 127.0.0.1 now (Prometheus is told one; it cannot report one it chose). */
async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

interface QueryResult {
  status: string
  data: { result: { metric: Record<string, string>; value: [number, string] }[] }
}

describe.skipIf(skip)('a Prometheus scrape', () => {
  it('scrapes the peer with the example config and the token from its file', async () => {
    const home = await makeHome()
    const p = await peer(home)
    const { url } = await kitsyncJson<{ url: string }>(home, ['dashboard'])
    await kitsyncOk(home, ['set', 'notes', 'n1', '"hello"'])
    const dir = await makeTempDir('ks-prom-')
    // The documented config, pointed at this peer: its token file and its port, scraped every second.
    const example = await readFile(join(REPO_ROOT, 'docs', 'prometheus.yml'), 'utf8')
    const config = example
      .replace(/credentials_file: .*/, `credentials_file: ${join(home, 'http.token')}`)
      .replace(/targets: \['127\.0\.0\.1:4772'\]/, `targets: ['${new URL(url).host}']`)
      .replace(/scrape_interval: 30s/, 'scrape_interval: 1s')
    expect(config).not.toBe(example)
    expect(config).toContain(new URL(url).host)
    const file = join(dir, 'prometheus.yml')
    await writeFile(file, config)
    const check = new Proc(PROMTOOL, ['check', 'config', file])
    expect((await check.waitForExit(20_000)).code, check.transcript()).toBe(0)

    const port = await freePort()
    const prom = new Proc(PROMETHEUS, [`--config.file=${file}`, `--web.listen-address=127.0.0.1:${port}`, `--storage.tsdb.path=${join(dir, 'data')}`])
    try {
      const query = async (q: string): Promise<QueryResult['data']['result'] | undefined> => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => undefined)
        if (res?.status !== 200) return undefined
        const body = (await res.json()) as QueryResult
        return body.data.result.length > 0 ? body.data.result : undefined
      }
      const up = await waitUntil(() => query('up{job="kitsync"}'), 30_000, `Prometheus to scrape the peer\n${prom.transcript()}`)
      expect(up[0]?.value[1]).toBe('1')
      const info = await waitUntil(() => query('kitsync_info'), 30_000, 'kitsync_info in Prometheus')
      expect(info[0]?.metric).toMatchObject({ job: 'kitsync', device: p.started.deviceId })
      const records = await waitUntil(() => query('kitsync_collection_records{collection="notes"}'), 30_000, 'the records of notes in Prometheus')
      expect(records[0]?.value[1]).toBe('1')
      const memory = await waitUntil(() => query('kitsync_process_resident_memory_bytes'), 30_000, 'the memory of the peer in Prometheus')
      expect(Number(memory[0]?.value[1])).toBeGreaterThan(1024 * 1024)
    } finally {
      prom.kill('SIGTERM')
      await prom.waitForExit(20_000)
    }
  })
})
