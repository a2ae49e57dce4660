/**
 * A damaged write-ahead file (store.wal). A writer process is killed (-9) while it writes, so
 * the file holds a few hundred acknowledged updates, the last of them not yet in LevelDB; then
 * the file is damaged on disk. Damage in the middle must not hide the whole records after it:
 * they are kept, the damage is reported as DATA_CORRUPTION with its byte offset, and the file
 * as it was is kept aside. A tail cut short (what a crash leaves) is dropped with a warning.
 *
 * Framing of the file (src/store/wal.ts): [length: u32 BE][crc32: u32 BE][rest], the rest holding
 * the collection's name, the update's seq, rows derived so far and the update (src/store/wal-record.ts).
 */
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { JsonValue } from '../../dist/index.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { decodeRest } from '../../src/store/wal-record.js'
import { cleanup, kitsync, kitsyncJson, makeHome, parseErrorLine, type CliResult } from '../helpers/cli.js'
import { writeUntilWalHolds } from '../helpers/wal-writer.js'

const COLLECTION = 'notes'
/** Writers at once in the fixture: one update in the file holds at most this many records. */
const CONCURRENCY = 8
/** The writer is killed once store.wal holds this much (a few hundred updates). */
const WAL_BYTES = 512 * 1024

afterEach(cleanup)

interface Killed {
  home: string
  acknowledged: Map<string, JsonValue>
  /** Byte offset of every record in store.wal, and its end. */
  records: { at: number; end: number }[]
}

/** Record boundaries of a write-ahead file (whole records from the start). */
function recordsOf(bytes: Buffer): { at: number; end: number }[] {
  const out: { at: number; end: number }[] = []
  for (let at = 0; at + 8 <= bytes.byteLength;) {
    const end = at + 8 + bytes.readUInt32BE(at)
    if (end > bytes.byteLength) break
    out.push({ at, end })
    at = end
  }
  return out
}

/**
 * Run the writer fixture and kill -9 it once store.wal holds WAL_BYTES: the writer never
 * pauses, so the file is not emptied meanwhile and its last updates are not in LevelDB yet.
 */
async function writeAndKill(): Promise<Killed> {
  const home = await makeHome()
  const walPath = join(home, 'store.wal')
  const { acknowledged } = await writeUntilWalHolds(home, COLLECTION, CONCURRENCY, WAL_BYTES)
  const records = recordsOf(await readFile(walPath))
  expect(records.length, 'records in store.wal after the kill').toBeGreaterThan(40)
  return { home, acknowledged, records }
}

/** JSON with object keys sorted: stored records come back with their fields in sorted order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, x: unknown) =>
    typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x,
  )
}

/** Acknowledged keys missing from the store or with another value (read through the CLI). */
async function missing(home: string, acknowledged: Map<string, JsonValue>): Promise<string[]> {
  const stored = await kitsyncJson<Record<string, JsonValue>>(home, ['get', COLLECTION])
  return [...acknowledged].filter(([key, value]) => canonical(stored[key]) !== canonical(value)).map(([key]) => key)
}

/** The message of a command that failed with `code` (a short context: stdout may be large). */
function errorOf(r: CliResult, code: string, exit: number): string {
  const context = `exit ${r.code}, stderr ${r.stderr.slice(0, 1000)}, stdout ${r.stdout.length} bytes`
  expect({ exit: r.code, stdout: r.stdout.length }, context).toEqual({ exit, stdout: 0 })
  const error = parseErrorLine(r.stderr)
  expect(error.code, context).toBe(code)
  return error.message
}

/**
 * The records the store holds for the collection (read from LevelDB itself), with `extra`
 * updates applied too. Records written after a lost update stay pending in the document until
 * that update arrives (Yjs integrates one writer's updates in order only); stored, they are kept.
 */
async function storedWith(home: string, extra: Uint8Array[]): Promise<Map<string, string>> {
  const db = new ClassicLevel<string, Uint8Array>(join(home, 'store'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  const doc = new Y.Doc()
  try {
    // Values are framed: [format: u8][crc32: u32][payload] (src/store/framing.ts); a snapshot of
    // format 2 refers to a file in snapshots/ that holds it (src/store/snapshot-files.ts).
    const snapshot = await db.get(`s!${COLLECTION}`)
    if (snapshot?.[0] === 2) {
      const ref = JSON.parse(Buffer.from(snapshot.subarray(5)).toString('utf8')) as { file: string }
      Y.applyUpdate(doc, await readFile(join(home, 'snapshots', ref.file)))
    } else if (snapshot !== undefined) Y.applyUpdate(doc, snapshot.subarray(5))
    for await (const value of db.values({ gte: `u!${COLLECTION}!`, lt: `u!${COLLECTION}"` })) Y.applyUpdate(doc, value.subarray(5))
  } finally {
    await db.close()
  }
  for (const update of extra) Y.applyUpdate(doc, update)
  const records = new RecordCollection(COLLECTION, doc)
  return new Map(records.keys().map((key) => [key, canonical(records.get(key))]))
}

/** Where the update of a whole record starts (it runs to the record's end). */
function updateAt(wal: Buffer, { at, end }: Killed['records'][number]): number {
  return end - decodeRest(wal, at + 8, end).update.byteLength
}

/**
 * The records the updates in a write-ahead file add to what LevelDB held at the kill (all of
 * them acknowledged, or being acknowledged at the kill). Applied on top of LevelDB's own: the
 * file is emptied whenever every update in it is in LevelDB (a pause of the writer on a loaded
 * machine), and its updates then build on ones that are only in LevelDB.
 */
async function walContent(home: string, wal: Buffer, records: Killed['records']): Promise<Map<string, string>> {
  const updates = records.filter((r) => r.end > updateAt(wal, r)).map((r) => new Uint8Array(wal.subarray(updateAt(wal, r), r.end)))
  const before = await storedWith(home, [])
  const after = await storedWith(home, updates)
  return new Map([...after].filter(([key, value]) => before.get(key) !== value))
}

async function damagedCopies(home: string): Promise<string[]> {
  return (await readdir(home)).filter((f) => f.startsWith('store.wal.damaged-'))
}

describe('a damaged write-ahead file', () => {
  it.each([
    ['in the middle of the file', (records: Killed['records']) => records[Math.floor(records.length / 2)]],
    ['in its last record', (records: Killed['records']) => records.at(-1)],
  ])('4 bytes overwritten %s: DATA_CORRUPTION with the offset, the records after it kept, the file kept aside', { timeout: 60_000 }, async (_where, pick) => {
    const { home, acknowledged, records } = await writeAndKill()
    const walPath = join(home, 'store.wal')
    const wal = await readFile(walPath)
    // (A record of rows only, without an update, is not what this damages.)
    const withUpdates = records.filter((r) => updateAt(wal, r) < r.end)
    const record = pick(withUpdates)
    if (record === undefined) throw new Error('no record to damage')
    const inWal = await walContent(home, wal, records)
    expect(inWal.size, 'records only store.wal holds at the kill').toBeGreaterThan(0)
    // The update as it was, past the header and the collection name: what another device would send again.
    const start = updateAt(wal, record)
    const original = new Uint8Array(wal.subarray(start, record.end))
    expect(original.byteLength, 'the damaged record holds an update').toBeGreaterThan(8)
    // Inside the update, past the header, the collection name and the rows.
    const at = start + Math.floor((record.end - start) / 2) - 2
    wal.writeUInt32BE(0xdeadbeef, at)
    await writeFile(walPath, wal)

    // The command that finds the damage says so: what, where, and where the file went.
    const first = await kitsync(home, ['get', COLLECTION])
    const message = errorOf(first, 'DATA_CORRUPTION', 5)
    expect(message).toContain('store.wal')
    expect(message).toContain(`byte ${record.at}`)
    const copies = await damagedCopies(home)
    expect(copies).toHaveLength(1)
    expect(message).toContain(copies[0])
    expect(await readFile(join(home, copies[0] as string)), 'the damaged file is kept as it was').toEqual(wal)

    // Every whole record was kept: the store holds every acknowledged record once the damaged
    // update is there again (as another device that has it sends it).
    expect((await kitsync(home, ['list'])).code).toBe(0)
    const stored = await storedWith(home, [original])
    const notStored = [...acknowledged].filter(([key, value]) => stored.get(key) !== canonical(value)).map(([key]) => key)
    expect(notStored.slice(0, 20), 'acknowledged records not stored').toEqual([])
    // The same for every record in the file before the damage, the many after it included.
    const lostFromWal = [...inWal].filter(([key, value]) => stored.get(key) !== value).map(([key]) => key)
    expect(lostFromWal.slice(0, 20), `records of store.wal not stored (of ${inWal.size})`).toEqual([])
    // The damaged update was the last one: nothing waits for it, so only its own records are missing.
    if (record === withUpdates.at(-1)) expect((await missing(home, acknowledged)).length).toBeLessThanOrEqual(CONCURRENCY)
    // Reported once; the damaged copy is never deleted.
    expect(await damagedCopies(home)).toEqual(copies)
  })

  it('cut short in the middle of a record: the records before it are kept, and the cut is logged with its offset', { timeout: 60_000 }, async () => {
    const { home, acknowledged, records } = await writeAndKill()
    const index = Math.floor(records.length / 2)
    const record = records[index] as Killed['records'][number]
    const walPath = join(home, 'store.wal')
    await truncate(walPath, record.at + 20)

    const first = await kitsync(home, ['get', COLLECTION, '--json'])
    expect(first.code, first.stderr.slice(0, 1000)).toBe(0)
    // What was cut cannot be told from a write a crash cut short: dropped, and said so.
    expect(first.stderr).toMatch(new RegExp(`store\\.wal.*byte ${record.at}\\b`))
    // Only what was in the bytes cut off (and not yet in LevelDB) can be missing.
    const lost = await missing(home, acknowledged)
    expect(lost.length).toBeLessThanOrEqual((records.length - index) * CONCURRENCY)
    // Once dropped, it is gone from the file: later commands are quiet.
    const second = await kitsync(home, ['list'])
    expect(second).toMatchObject({ code: 0, stderr: '' })
  })
})
