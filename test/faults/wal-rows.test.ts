/**
 * The rows a write-ahead record brings (src/store/wal-record.ts) against kill -9. A writer
 * process is killed while it writes, so store.wal holds hundreds of acknowledged updates that
 * LevelDB does not have yet. Each record carries its update's seq and the index and history
 * rows derived so far: the next open stores them with the updates and a checkpoint at the
 * last one (src/store/wal-recovery.ts), so reads come from the rows at once, with no document
 * loaded and nothing replayed, and the rows equal the records.
 *
 * A kill -9 during that open-time recovery leaves one of two states: before its one LevelDB
 * batch, the store and the file as the writer's kill left them (the first test); after the
 * batch but before the file is emptied, the store holding the records and the file still
 * holding them too. The second test makes that state exactly (the file as it was put back
 * after a recovery) and opens it: nothing may be stored twice, nothing lost, rows current.
 */
import { statSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { afterEach, describe, expect, it } from 'vitest'
import { openWorkspace, type JsonValue } from '../../dist/index.js'
import type { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { decodeRest, type WalEntry } from '../../src/store/wal-record.js'
import { cleanup, kitsync, kitsyncJson, makeHome } from '../helpers/cli.js'
import { writeUntilWalHolds } from '../helpers/wal-writer.js'

const COLLECTION = 'notes'
/** Writers at once in the fixture. */
const CONCURRENCY = 8
/** The writer is killed once store.wal holds this much (dozens of records, each of several writes with their rows). */
const WAL_BYTES = 512 * 1024

afterEach(cleanup)

/** JSON with object keys sorted: stored records come back with their fields in sorted order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, x: unknown) =>
    typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x,
  )
}

/** The document of the collection if `ws` (a local workspace) loaded it. */
function loadedDoc(ws: unknown): unknown {
  return (ws as LocalWorkspace).loadedDoc(COLLECTION)
}

/** The whole records of a write-ahead file, decoded. */
function walEntries(bytes: Buffer): WalEntry[] {
  const out: WalEntry[] = []
  for (let at = 0; at + 8 <= bytes.byteLength;) {
    const end = at + 8 + bytes.readUInt32BE(at)
    if (end > bytes.byteLength) break
    out.push(decodeRest(bytes, at + 8, end))
    at = end
  }
  return out
}

/** Run the writer fixture and kill -9 it once store.wal holds WAL_BYTES; the acknowledged records. */
async function writeAndKill(): Promise<{ home: string; acknowledged: Map<string, JsonValue>; lastKey: string }> {
  const home = await makeHome()
  // Stored with its rows first: the rows of a collection LevelDB has nothing of yet are derived at its next load instead.
  expect((await kitsync(home, ['set', COLLECTION, 'seed', '{"i":-1}'])).code).toBe(0)
  const { acknowledged, lastKey } = await writeUntilWalHolds(home, COLLECTION, CONCURRENCY, WAL_BYTES)
  return { home, acknowledged, lastKey }
}

/** What LevelDB holds of the collection: its log's seqs, its checkpoint, its index rows. */
async function stored(home: string): Promise<{ seqs: number[]; checkpoint: { seq: number; records: number } | undefined; rows: Map<string, string> }> {
  const db = new ClassicLevel<string, Uint8Array>(join(home, 'store'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  const json = (value: Uint8Array): unknown => JSON.parse(Buffer.from(value.subarray(5)).toString('utf8'))
  try {
    const seqs: number[] = []
    for await (const key of db.keys({ gte: `u!${COLLECTION}!`, lt: `u!${COLLECTION}"` })) seqs.push(parseInt(key.slice(`u!${COLLECTION}!`.length), 16))
    const cp = await db.get(`n!${COLLECTION}`)
    const rows = new Map<string, string>()
    for await (const [key, value] of db.iterator({ gte: `r!${COLLECTION}!`, lt: `r!${COLLECTION}"` })) {
      rows.set(key.slice(`r!${COLLECTION}!`.length), canonical((json(value) as { v: JsonValue }).v))
    }
    return { seqs, checkpoint: cp === undefined ? undefined : (json(cp) as { seq: number; records: number }), rows }
  } finally {
    await db.close()
  }
}

/** The rows reflect the whole log and equal the records; every acknowledged write is there (a fresh `kitsync get`). */
async function expectCurrent(home: string, acknowledged: Map<string, JsonValue>): Promise<void> {
  const records = await kitsyncJson<Record<string, JsonValue>>(home, ['get', COLLECTION])
  const notStored = [...acknowledged].filter(([key, value]) => canonical(records[key]) !== canonical(value)).map(([key]) => key)
  expect(notStored.slice(0, 20), 'acknowledged records not stored').toEqual([])
  const s = await stored(home)
  // (An empty log: a compaction wrote the checkpoint with its snapshot.)
  if (s.seqs.length > 0) expect(s.checkpoint?.seq, 'checkpoint at the log’s last seq').toBe(s.seqs.at(-1))
  expect(s.checkpoint?.records).toBe(Object.keys(records).length)
  const differing = Object.keys(records).filter((key) => s.rows.get(key) !== canonical(records[key]))
  expect(differing.slice(0, 20), 'rows that differ from their record').toEqual([])
  expect(s.rows.size).toBe(Object.keys(records).length)
  const check = await kitsync(home, ['check', '--json'])
  expect(check.code, `check: ${check.stderr}`).toBe(0)
}

describe('rows in the write-ahead file', () => {
  it(
    'after a kill -9 of a writer, the next open stores the records with their rows: reads come from the rows, no document is loaded',
    { timeout: 90_000 },
    async () => {
      const { home, acknowledged, lastKey } = await writeAndKill()
      const entries = walEntries(await readFile(join(home, 'store.wal')))
      const updates = entries.filter((e) => e.update.byteLength > 0)
      expect(updates.length, 'records in store.wal after the kill').toBeGreaterThan(20)
      // Every record names its seq, in order; the last one brings the rows so far, with the count.
      expect(updates.every((e, i) => i === 0 || e.seq === (updates[i - 1] as WalEntry).seq! + 1)).toBe(true)
      const lastRows = entries.filter((e) => e.rows !== undefined).at(-1)
      expect(lastRows?.seq).toBe(updates.at(-1)?.seq)
      expect(lastRows?.rows?.records).toBeGreaterThan(0)
      const before = await stored(home)
      expect(before.checkpoint?.seq, 'LevelDB lags the file').toBeLessThan(updates.at(-1)!.seq!)

      const ws = await openWorkspace({ home, mode: 'local', serve: false })
      try {
        expect(canonical(await ws.get(COLLECTION, lastKey))).toBe(canonical(acknowledged.get(lastKey)))
        // Answered from the rows: the document was not loaded, so nothing was replayed.
        expect(loadedDoc(ws)).toBeUndefined()
      } finally {
        await ws.close()
      }
      const after = await stored(home)
      expect(after.seqs.at(-1), 'the log ends at the file’s last update').toBe(updates.at(-1)?.seq)
      expect(after.checkpoint?.seq).toBe(updates.at(-1)?.seq)
      await expectCurrent(home, acknowledged)
    },
  )

  it(
    'killed after storing the records but before emptying store.wal (kill -9 during the open-time recovery): nothing is stored twice or lost',
    { timeout: 90_000 },
    async () => {
      const { home, acknowledged } = await writeAndKill()
      const walPath = join(home, 'store.wal')
      const wal = await readFile(walPath)
      expect((await kitsync(home, ['list'])).code).toBe(0) // recovers the file into LevelDB and empties it
      expect(statSync(walPath).size).toBe(0)
      const once = await stored(home)
      expect(once.seqs.length, 'the recovered records are in the log').toBeGreaterThan(20)
      // The state a kill -9 between the recovery's batch and the emptying of the file leaves.
      await writeFile(walPath, wal)
      const ws = await openWorkspace({ home, mode: 'local', serve: false })
      try {
        expect(loadedDoc(ws)).toBeUndefined()
        expect(await ws.get(COLLECTION, [...acknowledged.keys()][0] as string)).toBeDefined()
        expect(loadedDoc(ws)).toBeUndefined()
      } finally {
        await ws.close()
      }
      expect(statSync(walPath).size).toBe(0)
      const twice = await stored(home)
      expect(twice.seqs, 'the log after the second recovery').toEqual(once.seqs)
      expect(twice.checkpoint).toEqual(once.checkpoint)
      await expectCurrent(home, acknowledged)
    },
  )
})
