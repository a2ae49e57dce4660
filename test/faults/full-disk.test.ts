/**
 * A full disk: the home folder on a 4 MiB tmpfs, writes through a running peer until the disk
 * is full. Every write that was acknowledged must be in the store after the peer stops and the
 * disk grows again; every write that was not must have failed with STORAGE_FAILED (exit 5).
 * Once space comes back the same peer takes writes again, and they survive a restart.
 */
import { appendFile, mkdir, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { isKitsyncError, openWorkspace, type JsonValue, type Workspace } from '../../dist/index.js'
import { announceSkip, mountTmpfs, rootSkipReason, type Tmpfs } from '../helpers/faults.js'
import { cleanup, kitsync, kitsyncJson, startPeer, stopProc } from '../helpers/cli.js'
import { writeJsonFile } from '../../src/store/json-file.js'
import { writeSecretFile } from '../../src/store/secret-file.js'
import { SnapshotFiles } from '../../src/store/snapshot-files.js'

const skip = announceSkip('test/faults/full-disk.test.ts', rootSkipReason('a full disk (tmpfs)'))
const COLLECTION = 'notes'
/** Writes after the first failure: an app keeps writing, and some may find room again. */
const WRITES_AFTER_FAILURE = 40

let mounted: Tmpfs | undefined
afterEach(async () => {
  await cleanup()
  await mounted?.dispose()
  mounted = undefined
})

/** A value of about `bytes` bytes of JSON that does not compress away in the store. */
function valueOf(i: number, bytes: number): JsonValue {
  let pad = ''
  let x = i * 2654435761
  while (pad.length < bytes) {
    x = (x * 1103515245 + 12345) % 2147483648
    pad += x.toString(36)
  }
  return { i, pad: pad.slice(0, bytes) }
}

/**
 * Write until the disk is full and then some more. Returns what was acknowledged (set resolved)
 * and the codes of every failure.
 */
async function fillDisk(ws: Workspace, prefix: string): Promise<{ acknowledged: Map<string, JsonValue>; failures: string[] }> {
  const acknowledged = new Map<string, JsonValue>()
  const failures: string[] = []
  for (let i = 0; failures.length < WRITES_AFTER_FAILURE; i++) {
    // Sizes vary (0.5-12 KiB), so the last write before the disk is full is a short one as often as not.
    const value = valueOf(i, 512 + ((i * 7919) % (12 * 1024)))
    const key = `${prefix}-${i}`
    try {
      await ws.set(COLLECTION, key, value)
      acknowledged.set(key, value)
    } catch (err) {
      failures.push(isKitsyncError(err) ? err.code : `not a KitsyncError: ${String(err)}`)
    }
    if (i > 20_000) throw new Error('the 4 MiB disk never filled up')
  }
  return { acknowledged, failures }
}

/** Keys missing from the store or with another value. */
async function lost(home: string, acknowledged: Map<string, JsonValue>): Promise<string[]> {
  const stored = await kitsyncJson<Record<string, JsonValue>>(home, ['get', COLLECTION])
  return [...acknowledged].filter(([key, value]) => JSON.stringify(stored[key]) !== JSON.stringify(value)).map(([key]) => key)
}

describe.skipIf(skip)('a full disk', () => {
  it('keeps every acknowledged write; the others fail with STORAGE_FAILED', { timeout: 180_000 }, async () => {
    mounted = await mountTmpfs(4)
    const home = join(mounted.dir, 'home')
    const { proc: peer } = await startPeer(home)
    const ws = await openWorkspace({ home, mode: 'peer' })
    const { acknowledged, failures } = await fillDisk(ws, 'k')
    // One more through the CLI (a separate process over the control socket): acknowledged or STORAGE_FAILED.
    const cli = await kitsync(home, ['set', COLLECTION, 'cli-write', '{"from":"cli"}'])
    if (cli.code === 0) acknowledged.set('cli-write', { from: 'cli' })
    else expect(cli.stderr, 'the CLI write near a full disk').toMatch(/^kitsync: STORAGE_FAILED: /)
    await ws.close()
    expect(acknowledged.size).toBeGreaterThan(50)
    expect(failures.length).toBeGreaterThan(0)
    expect(new Set(failures)).toEqual(new Set(['STORAGE_FAILED']))
    const exit = await stopProc(peer)
    expect(exit.signal).toBeNull()

    await mounted.resize(64)
    expect(
      await lost(home, acknowledged),
      `acknowledged writes missing after the disk grew (${acknowledged.size} acknowledged, peer exit ${JSON.stringify(exit)}, stderr ${peer.stderr})`,
    ).toEqual([])
  })

  it('the running peer takes writes again once space comes back, and they survive a restart', { timeout: 180_000 }, async () => {
    mounted = await mountTmpfs(4)
    const home = join(mounted.dir, 'home')
    const { proc: peer } = await startPeer(home)
    const ws = await openWorkspace({ home, mode: 'peer' })
    const { acknowledged } = await fillDisk(ws, 'k')

    await mounted.resize(64)
    // The same peer, no restart: the first write after space came back succeeds, and every one after it.
    const after = new Map<string, JsonValue>()
    for (let i = 0; i < 20; i++) {
      const key = `after-${i}`
      await ws.set(COLLECTION, key, valueOf(i, 1000))
      after.set(key, valueOf(i, 1000))
    }
    // Reads through the running peer see every acknowledged write, before and after.
    const live = await ws.getAll(COLLECTION)
    const missingLive = [...acknowledged, ...after].filter(([key, value]) => JSON.stringify(live[key]) !== JSON.stringify(value)).map(([key]) => key)
    expect(missingLive, 'acknowledged writes the running peer does not show').toEqual([])
    await ws.close()
    expect(await stopProc(peer)).toEqual({ code: 0, signal: null })

    expect(await lost(home, new Map([...acknowledged, ...after])), 'acknowledged writes missing after a restart').toEqual([])
  })

  it('a JSON, secret or snapshot file that does not fit fails with STORAGE_FAILED and leaves what was there', async () => {
    mounted = await mountTmpfs(1)
    const keys = join(mounted.dir, 'keys.json')
    const snapshots = join(mounted.dir, 'snapshots')
    await writeJsonFile(keys, { v: 1 })
    await mkdir(snapshots)
    // Fill the disk: 16 KiB at a time, then 4 KiB (a page of tmpfs) at a time, until it refuses.
    for (const bytes of [16 * 1024, 4096]) {
      const chunk = Buffer.alloc(bytes, 1)
      for (let fits = true; fits;)
        fits = await appendFile(join(mounted.dir, 'filler'), chunk).then(
          () => true,
          () => false,
        )
    }
    await expect(writeJsonFile(keys, { v: 2, pad: 'x'.repeat(100_000) })).rejects.toMatchObject({ code: 'STORAGE_FAILED' })
    expect(JSON.parse(await readFile(keys, 'utf8'))).toEqual({ v: 1 })
    await expect(writeSecretFile(join(mounted.dir, 'identity.key'), new Uint8Array(100_000))).rejects.toMatchObject({ code: 'STORAGE_FAILED' })
    const { done } = await new SnapshotFiles(snapshots).begin('notes', new Uint8Array(300_000).fill(7))
    await expect(done).rejects.toThrow(/ENOSPC/)
    // No temporary or partial file is left behind.
    expect((await readdir(mounted.dir)).sort()).toEqual(['filler', 'keys.json', 'snapshots'])
    expect(await readdir(snapshots)).toEqual([])
  })
})
