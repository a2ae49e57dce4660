/**
 * openWorkspace's open path (issue 21, the fixed cost of an open): the home's small files
 * (workspace.json, identity.key, keys.json) are read beside the store's open while the store's
 * code loads, and code the first get does not need (the index check, the import, the recovery
 * of store.wal after a crash) is loaded only when used. Each still runs, in a fresh process,
 * and catches what it caught; a damaged small file still fails the open with the store closed.
 */
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openWorkspace, type JsonValue } from '../../dist/index.js'
import { rowDel } from '../../dist/store/record-rows.js'
import { openLevel } from '../../dist/store/level.js'
import { cleanup, FIXTURES, makeHome, makeTempDir, spawnNode, START_TIMEOUT_MS, STOP_TIMEOUT_MS } from '../helpers/cli.js'
import { writeUntilWalHolds } from '../helpers/wal-writer.js'

const COLLECTION = 'notes'
const PROBE = join(FIXTURES, 'open-modules.mjs')
/** Loaded only when used: a regression that puts one back on the open's path fails here. */
const DEFERRED = ['daemon/index-check.js', 'daemon/workspace-import.js', 'core/import-plan.js', 'store/wal-recovery.js']

afterEach(cleanup)

interface ProbeResult {
  value: JsonValue
  atOpen: string[]
  check?: { collection: string; records: number; differing: string[] }[]
  imported?: { dryRun: boolean; added: number }
  afterUse?: string[]
}

/** Open `home` in a fresh process, get `key`, and say which modules that loaded (test/fixtures/open-modules.mjs). */
async function probe(home: string, key: string, use = false): Promise<ProbeResult> {
  const log = join(await makeTempDir('ks-open-'), 'loads.txt')
  await writeFile(log, '')
  const proc = spawnNode(PROBE, [home, COLLECTION, key, log, ...(use ? ['use'] : [])])
  const exit = await proc.waitForExit(STOP_TIMEOUT_MS)
  expect(exit, proc.transcript().slice(0, 2000)).toEqual({ code: 0, signal: null })
  return JSON.parse(proc.lines[proc.lines.length - 1] as string) as ProbeResult
}

/** A home holding p0..p2 in COLLECTION, closed. */
async function homeWithRecords(): Promise<string> {
  const home = await makeHome()
  const ws = await openWorkspace({ home, mode: 'local', serve: false, name: 'early' })
  for (let i = 0; i < 3; i++) await ws.set(COLLECTION, `p${i}`, { symbol: `S${i}`, quantity: i })
  await ws.close()
  return home
}

describe('openWorkspace: what the first get does not need is loaded when used', () => {
  it('a fresh open + get loads neither the index check nor the import; used afterwards, the check still finds a missing row', async () => {
    const home = await homeWithRecords()
    // The index row of p2 lost (as a store damaged or written by a faulty version would have it).
    const db = await openLevel(join(home, 'store'), { createIfMissing: false })
    await db.batch([rowDel(COLLECTION, 'p2')])
    await db.close()

    const r = await probe(home, 'p1', true)
    expect(r.value).toEqual({ symbol: 'S1', quantity: 1 })
    expect(r.atOpen).toContain('daemon/local-workspace.js') // the log does see the open's modules
    for (const m of DEFERRED) expect(r.atOpen).not.toContain(m)
    // Used, they load and work as before.
    expect(r.check).toEqual([expect.objectContaining({ collection: COLLECTION, records: 3, differing: ['p2'] })])
    expect(r.imported).toEqual(expect.objectContaining({ dryRun: true, added: 1 }))
    expect(r.afterUse).toEqual(expect.arrayContaining(['daemon/index-check.js', 'daemon/workspace-import.js']))
  })

  it('after a kill -9 with writes in store.wal, the next open still recovers every acknowledged write (its recovery loaded then)', async () => {
    const home = await makeHome()
    const { acknowledged, lastKey } = await writeUntilWalHolds(home, COLLECTION, 4, 4096)
    expect((await stat(join(home, 'store.wal'))).size).toBeGreaterThanOrEqual(4096)
    const r = await probe(home, lastKey)
    expect(r.value).toEqual(acknowledged.get(lastKey))
    expect(r.atOpen).toContain('store/wal-recovery.js')
    // Every acknowledged write, read after that open.
    const ws = await openWorkspace({ home, mode: 'local', serve: false })
    const all = await ws.getAll(COLLECTION)
    await ws.close()
    for (const [key, value] of acknowledged) expect(all[key], key).toEqual(value)
  })
})

describe("openWorkspace: the home's small files, read beside the store", () => {
  it('a new home gets the name asked for, its device identity and a private workspace.json', async () => {
    const home = await makeHome()
    const ws = await openWorkspace({ home, mode: 'local', serve: false, name: 'early-name' })
    const info = await ws.info()
    await ws.set(COLLECTION, 'k', 1)
    await ws.close()
    expect(info.name).toBe('early-name')
    expect(info.deviceId).toMatch(/\S{8,}/)
    expect((await stat(join(home, 'workspace.json'))).mode & 0o777).toBe(0o600)
    // The same identity and workspace next time.
    const again = await openWorkspace({ home, mode: 'local', serve: false })
    expect(await again.info()).toEqual(expect.objectContaining({ deviceId: info.deviceId, workspaceId: info.workspaceId, name: 'early-name' }))
    expect(await again.get(COLLECTION, 'k')).toBe(1)
    await again.close()
  })

  it.each(['keys.json', 'workspace.json'])(
    'a damaged %s fails the open with DATA_CORRUPTION and leaves the store closed; repaired, the next open reads the data',
    async (file) => {
      const home = await homeWithRecords()
      const path = join(home, file)
      // keys.json is made by pairing; here one as it would hold after a revocation.
      if (file === 'keys.json') await writeFile(path, JSON.stringify({ current: 1, keys: { '1': '00'.repeat(32) } }), { mode: 0o600 })
      const good = await readFile(path)
      await writeFile(path, '{ damaged')
      // waitMs 0: a store left open by the failed attempt would be STORE_LOCKED here at once.
      await expect(openWorkspace({ home, mode: 'local', serve: false, waitMs: 0 })).rejects.toMatchObject({ code: 'DATA_CORRUPTION' })
      expect(await readFile(path, 'utf8')).toBe('{ damaged') // left as it is
      await writeFile(path, good)
      const ws = await openWorkspace({ home, mode: 'local', serve: false, waitMs: 0 })
      expect(await ws.get(COLLECTION, 'p2')).toEqual({ symbol: 'S2', quantity: 2 })
      await ws.close()
    },
  )

  it('a store held by another process is STORE_LOCKED (the open waits for it) even with a damaged keys.json', async () => {
    const home = await homeWithRecords()
    const holder = spawnNode(join(FIXTURES, 'writer.mjs'), [home, COLLECTION, 'w', '1'])
    await holder.waitForLine((l) => l.startsWith('{"ready":true'), START_TIMEOUT_MS, 'the ready line')
    await writeFile(join(home, 'keys.json'), '{ damaged', { mode: 0o600 }) // after the holder read it
    await expect(openWorkspace({ home, mode: 'local', serve: false, waitMs: 0 })).rejects.toMatchObject({ code: 'STORE_LOCKED' })
    holder.kill('SIGKILL')
    await holder.waitForExit(STOP_TIMEOUT_MS)
    await expect(openWorkspace({ home, mode: 'local', serve: false, waitMs: 0 })).rejects.toMatchObject({ code: 'DATA_CORRUPTION' })
  })
})
