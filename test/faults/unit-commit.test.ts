/**
 * A commit of units with their manifest records (core/unit-types.ts) against real faults: the
 * process killed (-9) while it commits in a loop, and a full disk (a 4 MiB tmpfs) in the middle of
 * a commit. An acknowledged commit has its units and its records after a restart; a commit that
 * failed has neither (they are one LevelDB batch).
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LocalWorkspace } from '../../dist/daemon/local-workspace.js'
import { isKitsyncError } from '../../dist/index.js'
import { announceSkip, mountTmpfs, rootSkipReason, type Tmpfs } from '../helpers/faults.js'
import { cleanup, FIXTURES, makeHome, spawnNode, START_TIMEOUT_MS, STOP_TIMEOUT_MS } from '../helpers/cli.js'

const C = '_folder.docs'
const skipDisk = announceSkip('test/faults/unit-commit.test.ts (full disk)', rootSkipReason('a full disk (tmpfs)'))

let mounted: Tmpfs | undefined
afterEach(async () => {
  await cleanup()
  await mounted?.dispose()
  mounted = undefined
})

async function record(ws: LocalWorkspace, key: string): Promise<unknown> {
  const registry = (ws as unknown as { registry: { load(n: string): Promise<{ collection: { get(k: string): unknown } }> } }).registry
  return (await registry.load(C)).collection.get(key)
}

async function text(ws: LocalWorkspace, unit: string): Promise<string> {
  const doc = await ws.units.open(C, unit, () => new Y.Doc())
  ws.units.close(C, unit)
  return doc.getText('text').toString()
}

describe('unit commits under kill -9', () => {
  it('every acknowledged commit has its unit and its record after the process is killed', { timeout: 60_000 }, async () => {
    const home = await makeHome()
    const writer = spawnNode(join(FIXTURES, 'unit-writer.mjs'), [home, C])
    await writer.waitForLine((l) => l.includes('"ready"'), START_TIMEOUT_MS, 'the writer ready')
    await writer.waitForLineCount(1 + 300, 30_000)
    writer.kill('SIGKILL')
    expect(await writer.waitForExit(STOP_TIMEOUT_MS)).toEqual({ code: null, signal: 'SIGKILL' })
    const acked = writer.lines.slice(1).map((l) => JSON.parse(l) as { unit: string; text: string })
    expect(acked.length).toBeGreaterThanOrEqual(300)

    const ws = await LocalWorkspace.open({ home })
    try {
      const listed = new Set(await ws.units.list(C))
      const lost: string[] = []
      for (const { unit, text: expected } of acked) {
        if (!listed.has(unit) || (await text(ws, unit)) !== expected || (await record(ws, unit)) === undefined) lost.push(unit)
      }
      expect(lost, `acknowledged commits missing after kill -9 (of ${acked.length})`).toEqual([])
      // At most the one commit in flight is there beyond what was acknowledged, and it is whole.
      expect(listed.size - acked.length).toBeLessThanOrEqual(1)
      for (const unit of listed) expect(await record(ws, unit), `the record of ${unit}`).toBeDefined()
    } finally {
      await ws.close()
    }
  })
})

describe.skipIf(skipDisk)('unit commits on a full disk', () => {
  it('a commit that does not fit fails with STORAGE_FAILED and stores neither its unit nor its record', { timeout: 120_000 }, async () => {
    mounted = await mountTmpfs(4)
    const home = join(mounted.dir, 'home')
    let ws = await LocalWorkspace.open({ home })
    const acked: { unit: string; text: string }[] = []
    let failed: { unit: string; code: string } | undefined
    for (let i = 0; failed === undefined && i < 10_000; i++) {
      const unit = `unit${String(i).padStart(18, '0')}`
      const doc = await ws.units.open(C, unit, () => new Y.Doc())
      let update: Uint8Array | undefined
      doc.on('update', (u: Uint8Array) => (update = u))
      // Incompressible text (LevelDB compresses), 8-40 KiB a commit.
      const body = randomBytes(4096 + ((i * 7919) % 16384)).toString('base64')
      doc.getText('text').insert(0, body)
      try {
        await ws.units.commit(C, [{ unit, update: update as Uint8Array }], [{ key: unit, fields: { path: `f${i}.txt`, size: body.length } }])
        acked.push({ unit, text: body })
      } catch (err) {
        failed = { unit, code: isKitsyncError(err) ? err.code : String(err) }
      }
    }
    expect(failed?.code).toBe('STORAGE_FAILED')
    expect(acked.length).toBeGreaterThan(20)
    await ws.close().catch(() => undefined) // on a full disk its last compaction may fail; the next open reads the log
    await mounted.resize(64)
    ws = await LocalWorkspace.open({ home })
    try {
      const listed = new Set(await ws.units.list(C))
      const unit = (failed as { unit: string }).unit
      expect(listed.has(unit), 'the unit of the failed commit').toBe(false)
      expect(await record(ws, unit), 'the record of the failed commit').toBeUndefined()
      const lost: string[] = []
      for (const a of acked) if (!listed.has(a.unit) || (await text(ws, a.unit)) !== a.text || (await record(ws, a.unit)) === undefined) lost.push(a.unit)
      expect(lost, `acknowledged commits missing after the disk grew (of ${acked.length})`).toEqual([])
    } finally {
      await ws.close()
    }
  })
})
