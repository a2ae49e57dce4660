/**
 * A damaged block in one of LevelDB's table files (.ldb). LevelDB itself reports it
 * ("Corruption: bad block type"): the collection whose data is in the block fails with
 * DATA_CORRUPTION naming it, every other collection stays readable and writable, and the
 * table file is left as it is.
 *
 * Table layout (LevelDB's table_format.md): data blocks of about 4 KiB, each entry
 * [shared: varint][unshared: varint][value length: varint][key + 8-byte sequence][value],
 * then the restart array (u32 each, and their count), then a trailer [type: u8][crc: u32].
 * A block is cut after the entry that takes it past 4 KiB, so a large value is the last entry
 * of its block. Keys (src/store/doc-layout.ts): m!<name> metadata, r!<name>!<key> index rows,
 * s!<name> snapshot.
 */
import { randomBytes } from 'node:crypto'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, expectCliError, expectJsonCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, startPeer, stopProc } from '../helpers/cli.js'

afterEach(cleanup)

/** Sorts after `alpha`, so its snapshot (large: a block of its own) follows alpha's data and both collections' metadata. */
const DAMAGED = 'omega'
const HEALTHY = 'alpha'

interface CollectionInfo {
  name: string
  records: number
  error?: { code: string; message: string }
}

/** A varint at `at`: its value and where it ends. */
function varint(bytes: Buffer, at: number): { value: number; end: number } {
  let value = 0
  for (let shift = 0, i = at; i < bytes.byteLength && shift < 35; i++, shift += 7) {
    value += ((bytes[i] as number) & 0x7f) * 2 ** shift
    if (((bytes[i] as number) & 0x80) === 0) return { value, end: i + 1 }
  }
  return { value: -1, end: -1 }
}

/**
 * Damage the trailer's type byte of every block in `dir`'s table files whose last entry is
 * `key` (its only restart point, as in a block of fewer than 16 entries). Returns the files.
 */
async function damageBlockOf(dir: string, key: string): Promise<string[]> {
  const damaged: string[] = []
  const keyBytes = Buffer.from(key)
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.ldb'))) {
    const bytes = await readFile(join(dir, file))
    let changed = false
    // An entry stores the key past the prefix it shares with the entry before: try each split.
    for (let shared = 0; shared < keyBytes.byteLength; shared++) {
      const unshared = keyBytes.subarray(shared)
      for (let pos = bytes.indexOf(unshared); pos >= 0; pos = bytes.indexOf(unshared, pos + 1)) {
        for (let start = pos - 7; start <= pos - 3; start++) {
          if (start < 0 || bytes[start] !== shared || bytes[start + 1] !== unshared.byteLength + 8) continue
          const length = varint(bytes, start + 2)
          if (length.end !== pos) continue
          const end = pos + unshared.byteLength + 8 + length.value
          // [restart 0: u32][restart count 1: u32][type 0 (not compressed): u8][crc: u32]
          if (end + 13 > bytes.byteLength || bytes.readUInt32LE(end) !== 0 || bytes.readUInt32LE(end + 4) !== 1 || bytes[end + 8] !== 0) continue
          bytes[end + 8] = 0xee
          changed = true
        }
      }
    }
    if (changed) {
      await writeFile(join(dir, file), bytes)
      damaged.push(file)
    }
  }
  return damaged
}

/** Two collections written through the CLI; the damaged one's snapshot fills a block of its own. */
async function populate(home: string): Promise<void> {
  // Incompressible (LevelDB keeps the block as it is) and larger than a block.
  await kitsyncOk(home, ['set', DAMAGED, 'big', '-'], { input: JSON.stringify({ blob: randomBytes(96 * 1024).toString('base64') }) })
  await kitsyncOk(home, ['set', DAMAGED, 'o2', '{"v":2}'])
  await kitsyncOk(home, ['set', HEALTHY, 'a1', '-'], { input: JSON.stringify({ w: 1, pad: randomBytes(6 * 1024).toString('base64') }) })
  await kitsyncOk(home, ['set', HEALTHY, 'a2', '[true,null]'])
  // Each open turns LevelDB's log into a table file: after this one everything is in .ldb files.
  await kitsyncOk(home, ['list'])
}

/** Through a running peer: the same answers as without one, and the peer keeps serving. */
async function expectPeerServes(home: string, peer: Awaited<ReturnType<typeof startPeer>>['proc']): Promise<void> {
  const get = await kitsync(home, ['get', DAMAGED])
  expect(expectCliError(get, 'DATA_CORRUPTION', 5)).toContain(DAMAGED)
  expect(await kitsyncJson(home, ['get', HEALTHY, 'a3'])).toBe('still writable')
  expect(peer.exitInfo).toBeUndefined()
  expect(await stopProc(peer)).toEqual({ code: 0, signal: null })
}

/** `metaDamaged`: the collection's metadata is in the damaged block too, so it cannot be listed by name. */
async function expectDamagedReported(home: string, metaDamaged: boolean): Promise<void> {
  const get = await kitsync(home, ['get', DAMAGED])
  expect(expectCliError(get, 'DATA_CORRUPTION', 5)).toContain(DAMAGED)
  expect(expectJsonCliError(await kitsync(home, ['get', DAMAGED, 'o2', '--json']), 'DATA_CORRUPTION', 5).details).toMatchObject({ collection: DAMAGED })

  // The other collection reads and writes as before.
  expect(await kitsyncJson<Record<string, unknown>>(home, ['get', HEALTHY, 'a2'])).toEqual([true, null])
  await kitsyncOk(home, ['set', HEALTHY, 'a3', '"still writable"'])
  expect(await kitsyncJson(home, ['get', HEALTHY, 'a3'])).toBe('still writable')

  // list marks the damaged collection (or, when its name is in the damaged block, the damage itself).
  const listed = await kitsync(home, ['list', '--json'])
  expect(listed.code, listed.stderr).toBe(0)
  const list = JSON.parse(listed.stdout) as CollectionInfo[]
  expect(list.find((c) => c.name === HEALTHY)).toMatchObject({ records: 3 })
  expect(list.find((c) => c.name === HEALTHY)?.error).toBeUndefined()
  const marked = list.find((c) => c.name === (metaDamaged ? '(unlisted)' : DAMAGED))
  expect(marked?.error).toMatchObject({ code: 'DATA_CORRUPTION', message: expect.stringContaining(metaDamaged ? 'damaged block' : DAMAGED) as unknown })

  // export writes what it can read, names what it cannot, and exits 5.
  const exported = await kitsync(home, ['export'])
  expect(exported.code).toBe(5)
  expect(exported.stderr).toMatch(new RegExp(`^(.*\\n)*kitsync: DATA_CORRUPTION: .*${metaDamaged ? 'damaged block' : DAMAGED}.*\\n$`))
  const doc = JSON.parse(exported.stdout) as { collections: Record<string, Record<string, unknown>>; unreadable: { collection: string; code: string }[] }
  expect(Object.keys(doc.collections)).toEqual([HEALTHY])
  expect(doc.unreadable).toEqual([expect.objectContaining({ collection: metaDamaged ? '(unlisted)' : DAMAGED, code: 'DATA_CORRUPTION' })])
}

describe('a damaged LevelDB block', () => {
  it.each([
    // LevelDB merged the tables into one (its compaction): the snapshot's block follows the healthy collection's data.
    ["holds one collection's snapshot", true],
    // One table per session: the damaged collection's metadata shares the block with its snapshot.
    ["holds one collection's metadata and snapshot", false],
  ])('that %s fails only that collection, with DATA_CORRUPTION naming it, and is left as it is', { timeout: 90_000 }, async (_what, compact) => {
    const home = await makeHome()
    await populate(home)
    const store = join(home, 'store')
    if (compact) {
      const db = new ClassicLevel<string, Uint8Array>(store, { keyEncoding: 'utf8', valueEncoding: 'view' })
      await db.compactRange('a', 'z')
      await db.close()
    }
    const damaged = await damageBlockOf(store, `s!${DAMAGED}`)
    // Between the metadata and the snapshot lie the collection's index rows (r!<name>!<key>); the
    // large record's row ends the block that holds the metadata: damaged too, the metadata is
    // in a damaged block as it was when it shared the snapshot's.
    if (!compact) damaged.push(...(await damageBlockOf(store, `r!${DAMAGED}!big`)))
    expect(damaged.length, 'table files with the snapshot block').toBeGreaterThan(0)
    const before = await Promise.all(damaged.map((f) => readFile(join(store, f))))

    await expectDamagedReported(home, !compact)
    if (compact) await expectPeerServes(home, (await startPeer(home)).proc)
    else {
      // The block also spans where the peer looks up its own collections (_members, _revoked),
      // which a listing of names with damage in it cannot vouch for. Whether that lookup reaches
      // the damaged block varies from run to run (under load, in about 1 run of 3; not explained
      // yet, see the closing note of this change): the peer then refuses to start, naming the
      // damage, rather than start without its members or revocations. Either way it is one of
      // these two, and the files stay as they are.
      let refused: Error | undefined
      const peer = await startPeer(home).catch((err: Error) => void (refused = err))
      if (peer !== undefined) await expectPeerServes(home, peer.proc)
      else expect(refused?.message).toMatch(/exited \(\{"code":5,.*"code":"DATA_CORRUPTION","message":"collection _\w+: LevelDB reports a damaged block/s)
    }

    // Nothing was repaired or deleted behind the user's back.
    const files = await readdir(store)
    for (const [i, f] of damaged.entries()) {
      expect(files).toContain(f)
      expect(await readFile(join(store, f))).toEqual(before[i])
    }
  })
})
