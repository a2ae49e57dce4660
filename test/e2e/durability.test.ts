/**
 * Durability under kill -9: a write whose `set` resolved (was acknowledged) must be in the
 * store after the process holding the store is SIGKILLed at an arbitrary moment.
 *
 * Kill points come from a seeded PRNG; set KITSYNC_TEST_SEED to replay a failure (the seed is
 * in every failure message). Iterations run one after another on the same home folder, so
 * later iterations also recover from every earlier kill (stale socket and pid file, a log
 * that may have been compacted in between).
 */
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isKitsyncError, openWorkspace, type JsonValue, type Workspace } from '../../dist/index.js'
import { cleanup, FIXTURES, makeHome, prng, spawnNode, START_TIMEOUT_MS, startPeer, STOP_TIMEOUT_MS, testSeed } from '../helpers/cli.js'

const ITERATIONS = 20
const COLLECTION = 'durable'
const WRITER = join(FIXTURES, 'writer.mjs')
/** Compaction threshold of the writer fixture: small, so that it compacts every few dozen writes. */
const COMPACT_MIN_BYTES = 16 * 1024

afterAll(cleanup)

/** The value the writer fixture writes for key `${prefix}-${i}` (kept in step with writer.mjs). */
function writerValue(prefix: string, i: number): JsonValue {
  return { i, prefix, pad: 'x'.repeat((i * 37) % 400), nested: { list: [i, String(i)] } }
}

/** JSON with object keys sorted: stored records come back with their fields in sorted order. */
function canonical(value: JsonValue | undefined): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  )
}

/**
 * Open the store directly (the killed process must have released it) and check that every
 * acknowledged key is there with its value, and that nothing is there that was never written.
 */
async function verifyStore(
  home: string,
  acknowledged: Map<string, JsonValue>,
  mayExist: (key: string, value: JsonValue) => boolean,
  context: string,
): Promise<void> {
  const ws: Workspace = await openWorkspace({ home, mode: 'local', serve: false })
  try {
    const list = await ws.list()
    expect(
      list.map((c) => ({ name: c.name, error: c.error })),
      context,
    ).toEqual([{ name: COLLECTION, error: undefined }])
    const stored = await ws.getAll(COLLECTION)
    const missing: string[] = []
    const wrong: string[] = []
    for (const [key, value] of acknowledged) {
      if (!Object.hasOwn(stored, key)) missing.push(key)
      else if (canonical(stored[key]) !== canonical(value)) wrong.push(key)
    }
    expect({ missing, wrong }, `${context}: acknowledged writes lost or changed`).toEqual({ missing: [], wrong: [] })
    const unexpected = Object.entries(stored)
      .filter(([key, value]) => !acknowledged.has(key) && !mayExist(key, value))
      .map(([key]) => key)
    expect(unexpected, `${context}: records that were never written (or with other values)`).toEqual([])
    expect(list[0]?.records, context).toBe(Object.keys(stored).length)
  } finally {
    await ws.close()
  }
}

describe('durability under SIGKILL', () => {
  it(`keeps every write acknowledged by the peer when the peer is killed (${ITERATIONS} kills)`, { timeout: 120_000 }, async () => {
    const seed = testSeed(20240611)
    const rand = prng(seed)
    const home = await makeHome()
    const acknowledged = new Map<string, JsonValue>()
    // Everything ever sent: a write in flight at the kill may or may not have landed.
    const attempted = new Map<string, JsonValue>()

    for (let iter = 0; iter < ITERATIONS; iter++) {
      const target = rand.int(20, 300)
      const concurrency = rand.int(1, 8)
      const context = `seed ${seed}, iteration ${iter}, kill after ${target} acks, ${concurrency} writers`
      const { proc: peer } = await startPeer(home)
      const ws = await openWorkspace({ home, mode: 'peer' })
      expect(ws.mode).toBe('peer')

      let next = 0
      let acks = 0
      const failures: unknown[] = []
      const writer = async (): Promise<void> => {
        // Write until the kill closes the connection (the guard only bounds a broken kill).
        while (failures.length === 0 && acks < target + 100_000) {
          const i = next++
          const key = `p${iter}-${i}`
          const value: JsonValue = { iter, i, text: `value ${i} of iteration ${iter}`, n: i / 7 }
          attempted.set(key, value)
          try {
            await ws.set(COLLECTION, key, value)
          } catch (err) {
            failures.push(err)
            return
          }
          acknowledged.set(key, value)
          if (++acks === target) peer.kill('SIGKILL')
        }
      }
      await Promise.all(Array.from({ length: concurrency }, writer))
      const exit = await peer.waitForExit(STOP_TIMEOUT_MS)
      await ws.close()

      expect(exit, context).toEqual({ code: null, signal: 'SIGKILL' })
      expect(acks, context).toBeGreaterThanOrEqual(target)
      // Writes cut off by the kill fail with CONNECTION_CLOSED, never hang or succeed silently.
      expect(failures.length, context).toBeGreaterThan(0)
      expect(
        failures.map((e) => (isKitsyncError(e) ? e.code : String(e))),
        context,
      ).toEqual(failures.map(() => 'CONNECTION_CLOSED'))

      await verifyStore(home, acknowledged, (key, value) => canonical(attempted.get(key)) === canonical(value), context)
    }
    expect(acknowledged.size).toBeGreaterThanOrEqual(ITERATIONS * 20)
  })

  it(`keeps every write acknowledged by a local writer process when it is killed (${ITERATIONS} kills)`, { timeout: 120_000 }, async () => {
    const seed = testSeed(777)
    const rand = prng(seed)
    const home = await makeHome()
    const acknowledged = new Map<string, JsonValue>()

    for (let iter = 0; iter < ITERATIONS; iter++) {
      const target = rand.int(1, 300)
      // The writer compacts every few dozen writes (COMPACT_MIN_BYTES), so kills also land in and
      // around compactions; half the runs have one writer, the others several (batched appends).
      const concurrency = iter % 2 === 0 ? 1 : rand.int(2, 8)
      const prefix = `w${iter}`
      const context = `seed ${seed}, iteration ${iter}, kill after ${target} acked lines, ${concurrency} writers`
      const writer = spawnNode(WRITER, [home, COLLECTION, prefix, String(concurrency), String(COMPACT_MIN_BYTES)])
      await writer.waitForLine((l) => l.startsWith('{"ready":true'), START_TIMEOUT_MS, 'the ready line')
      await writer.waitForLineCount(1 + target, START_TIMEOUT_MS)
      writer.kill('SIGKILL')
      const exit = await writer.waitForExit(STOP_TIMEOUT_MS)
      expect(exit, `${context}\n${writer.transcript()}`).toEqual({ code: null, signal: 'SIGKILL' })
      expect(writer.stderr, context).toBe('')

      // Every complete line printed before the kill is an acknowledged write.
      const acked = writer.lines.slice(1).map((l) => JSON.parse(l) as { key: string; value: JsonValue })
      expect(acked.length, context).toBeGreaterThanOrEqual(target)
      for (const { key, value } of acked) {
        const i = Number(key.slice(prefix.length + 1))
        expect(key, context).toBe(`${prefix}-${i}`)
        expect(value, context).toEqual(writerValue(prefix, i))
        acknowledged.set(key, value)
      }

      await verifyStore(
        home,
        acknowledged,
        (key, value) => {
          const m = /^(w\d+)-(\d+)$/.exec(key)
          return m !== null && canonical(value) === canonical(writerValue(m[1] as string, Number(m[2])))
        },
        context,
      )
    }
    expect(acknowledged.size).toBeGreaterThanOrEqual(ITERATIONS)
  })
})
