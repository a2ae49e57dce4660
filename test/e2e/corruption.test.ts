/**
 * A damaged stored value: the collection it belongs to fails with DATA_CORRUPTION (exit 5)
 * naming it, every other collection keeps working, `list` marks the damaged one, and nothing
 * is deleted or rewritten behind the user's back.
 *
 * The store is damaged directly in LevelDB (see src/store/doc-layout.ts for the key layout:
 * `m!<name>` metadata, `s!<name>` snapshot, `u!<name>!<seq>` log).
 */
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { afterEach, describe, expect, it } from 'vitest'
import {
  cleanup,
  expectCliError,
  expectJsonCliError,
  kitsync,
  kitsyncJson,
  kitsyncOk,
  makeHome,
  runLimited,
  startPeer,
  stopProc,
  waitUntil,
} from '../helpers/cli.js'

const GARBAGE = Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37, 0xff, 0x42, 0x42, 0x42, 0x42])

interface CollectionInfo {
  name: string
  records: number
  bytes: number
  error?: { code: string; message: string }
}

type Entries = Map<string, Uint8Array>

function openStore(home: string): ClassicLevel<string, Uint8Array> {
  return new ClassicLevel<string, Uint8Array>(join(home, 'store'), { keyEncoding: 'utf8', valueEncoding: 'view' })
}

/** Every key and value of the store (only while no kitsync process holds it). */
async function readStore(home: string): Promise<Entries> {
  const db = openStore(home)
  try {
    const out: Entries = new Map()
    for await (const [key, value] of db.iterator()) out.set(key, Uint8Array.from(value))
    return out
  } finally {
    await db.close()
  }
}

/** Overwrite one stored value; returns the key that was damaged. */
async function damage(home: string, pickKey: (keys: string[]) => string | undefined, corrupt: (value: Uint8Array) => Uint8Array): Promise<string> {
  const db = openStore(home)
  try {
    const keys: string[] = []
    for await (const key of db.keys()) keys.push(key)
    const key = pickKey(keys)
    if (key === undefined) throw new Error(`no key to damage among ${JSON.stringify(keys)}`)
    const value = await db.get(key)
    if (value === undefined) throw new Error(`key ${key} vanished`)
    await db.put(key, corrupt(Uint8Array.from(value)))
    return key
  } finally {
    await db.close()
  }
}

/** The snapshot key of a collection, if it has one (a cleanly closed store has folded its log into it). */
const snapshotOf = (name: string, keys: string[]): string | undefined => (keys.includes(`s!${name}`) ? `s!${name}` : undefined)

const bytesOf = (entries: Entries): Record<string, number[]> => Object.fromEntries([...entries].map(([k, v]) => [k, [...v]]))

/**
 * What every reader must see once `alpha` is damaged and `beta` is not. `parallel`: how many
 * commands at once (all of them through a peer; a few without one, as each takes the store).
 */
async function expectAlphaDamagedBetaFine(home: string, parallel: number): Promise<void> {
  const [getAlpha, getAlphaKey, getAlphaJson, getBeta, getBetaKey, listJson, listText, exported] = await runLimited(parallel, [
    () => kitsync(home, ['get', 'alpha']),
    () => kitsync(home, ['get', 'alpha', 'a1']),
    () => kitsync(home, ['get', 'alpha', 'a1', '--json']),
    () => kitsyncJson(home, ['get', 'beta']),
    () => kitsyncOk(home, ['get', 'beta', 'b1']),
    () => kitsyncJson<CollectionInfo[]>(home, ['list']),
    () => kitsyncOk(home, ['list']),
    () => kitsync(home, ['export']),
  ] as const)
  expect(expectCliError(getAlpha, 'DATA_CORRUPTION', 5)).toContain('alpha')
  expect(expectCliError(getAlphaKey, 'DATA_CORRUPTION', 5)).toContain('alpha')
  expect(expectJsonCliError(getAlphaJson, 'DATA_CORRUPTION', 5).details).toMatchObject({ collection: 'alpha' })

  // The other collection is untouched and readable.
  expect(getBeta).toEqual({ b1: { w: 1 }, b2: [true, null] })
  expect(JSON.parse(getBetaKey)).toEqual({ w: 1 })

  // list shows both: beta with its records, alpha marked with the error.
  expect(listJson).toEqual([
    { name: 'alpha', records: 0, bytes: 0, error: { code: 'DATA_CORRUPTION', message: expect.stringContaining('alpha') as unknown } },
    { name: 'beta', records: 2, bytes: expect.any(Number) as unknown, kind: 'generic', policy: 'merge' },
  ])
  expect(listText).toMatch(/^alpha\s+DATA_CORRUPTION: .*alpha/m)
  expect(listText).toMatch(/^beta\s+2\s+\d+\s+generic\s+merge$/m)

  // export writes what it can read, names what it cannot, and exits 5.
  expect(exported.code).toBe(5)
  expect(exported.stderr).toMatch(/^kitsync: DATA_CORRUPTION: .*alpha.*\n$/)
  const doc = JSON.parse(exported.stdout) as { collections: Record<string, unknown>; unreadable: { collection: string; code: string }[] }
  expect(doc.collections).toEqual({ beta: { b1: { w: 1 }, b2: [true, null] } })
  expect(doc.unreadable).toEqual([expect.objectContaining({ collection: 'alpha', code: 'DATA_CORRUPTION' })])

  // Writing to the damaged collection is refused (it cannot be loaded); the healthy one takes writes.
  expectCliError(await kitsync(home, ['set', 'alpha', 'a3', '{"v":3}']), 'DATA_CORRUPTION', 5)
  await kitsyncOk(home, ['set', 'beta', 'b3', '"still writable"'])
  expect(await kitsyncJson(home, ['get', 'beta', 'b3'])).toBe('still writable')
  await kitsyncOk(home, ['del', 'beta', 'b3'])
}

/** alpha and beta written through the CLI (no peer), plus any `extra` writes to alpha. */
async function populate(home: string, extra: { args: string[]; input?: string }[] = []): Promise<void> {
  await kitsyncOk(home, ['set', 'alpha', 'a1', '{"v":1}'])
  await kitsyncOk(home, ['set', 'alpha', 'a2', '{"v":2}'])
  for (const { args, input } of extra) await kitsyncOk(home, args, input === undefined ? {} : { input })
  await kitsyncOk(home, ['set', 'beta', 'b1', '{"w":1}'])
  await kitsyncOk(home, ['set', 'beta', 'b2', '[true,null]'])
  expect((await kitsyncJson<CollectionInfo[]>(home, ['list'])).map((c) => [c.name, c.error])).toEqual([
    ['alpha', undefined],
    ['beta', undefined],
  ])
}

/** Nothing was deleted or repaired: the store holds what it held right after the damage, except
 * for beta's own later writes. */
async function expectStoreKept(home: string, afterDamage: Entries, damagedKey: string, damagedValue: Uint8Array): Promise<void> {
  const now = await readStore(home)
  expect(now.get(damagedKey)).toEqual(damagedValue)
  const alphaKeys = (e: Entries): Entries => new Map([...e].filter(([k]) => /^[msvu]!alpha(!|$)/.test(k)))
  expect(bytesOf(alphaKeys(now))).toEqual(bytesOf(alphaKeys(afterDamage)))
}

afterEach(cleanup)

describe('a damaged value in the store', () => {
  it('without a peer: a damaged update log entry fails only its collection, and stays in the store', async () => {
    const home = await makeHome()
    await populate(home)
    // A clean close may fold the log into the snapshot; a write through a peer that is then
    // killed stays in the update log, so there is a log entry to damage.
    const peer = await startPeer(home)
    await kitsyncOk(home, ['set', 'alpha', 'a0', '{"v":0}'])
    // Acknowledged from the write-ahead file; it is in LevelDB's log once the file is empty.
    await waitUntil(async () => (statSync(join(home, 'store.wal')).size === 0 ? true : undefined), 10_000, 'the write-ahead file emptied into LevelDB')
    expect(await stopProc(peer.proc, 'SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' })
    const before = await readStore(home)
    const damaged = await damage(
      home,
      (keys) => keys.filter((k) => k.startsWith('u!alpha!')).at(-1),
      () => GARBAGE,
    )
    expect(damaged).toMatch(/^u!alpha![0-9a-f]{16}$/)
    const afterDamage = await readStore(home)
    expect([...afterDamage.keys()]).toEqual([...before.keys()])

    await expectAlphaDamagedBetaFine(home, 3)
    await expectStoreKept(home, afterDamage, damaged, GARBAGE)
  })

  it('through a running peer: same errors over the socket, the peer keeps serving, nothing is deleted', async () => {
    const home = await makeHome()
    await populate(home)
    // Whichever alpha holds: its snapshot (after a clean close) or else an update log entry.
    const damaged = await damage(
      home,
      (keys) => snapshotOf('alpha', keys) ?? keys.find((k) => k.startsWith('u!alpha!')),
      () => GARBAGE,
    )
    const afterDamage = await readStore(home)

    const { proc: peer } = await startPeer(home)
    await expectAlphaDamagedBetaFine(home, 8)
    expect(peer.exitInfo).toBeUndefined()
    expect(await stopProc(peer)).toEqual({ code: 0, signal: null })

    await expectStoreKept(home, afterDamage, damaged, GARBAGE)
    // And it is still reported after the peer is gone.
    expectCliError(await kitsync(home, ['get', 'alpha']), 'DATA_CORRUPTION', 5)
  })

  it('a snapshot with one flipped bit is detected too (checksum), and left as it is', async () => {
    const home = await makeHome()
    // A record over the compaction threshold (256 KiB of log) makes alpha compact into a snapshot
    // (whether or not a clean close also compacts).
    await populate(home, [{ args: ['set', 'alpha', 'bulky', '-'], input: JSON.stringify({ blob: 'z'.repeat(300 * 1024) }) }])
    const stored = await readStore(home)
    expect(stored.has('s!alpha')).toBe(true)

    let original: Uint8Array | undefined
    const damaged = await damage(
      home,
      (keys) => snapshotOf('alpha', keys),
      (value) => {
        original = Uint8Array.from(value)
        const copy = Uint8Array.from(value)
        const at = Math.floor(copy.length / 2)
        copy[at] = (copy[at] as number) ^ 0x01
        return copy
      },
    )
    const afterDamage = await readStore(home)
    const damagedValue = afterDamage.get(damaged) as Uint8Array
    expect(damagedValue).not.toEqual(original)
    expect(damagedValue.length).toBe(original?.length)

    const message = expectCliError(await kitsync(home, ['get', 'alpha', 'a1']), 'DATA_CORRUPTION', 5)
    expect(message).toContain('alpha')
    expect(await kitsyncJson(home, ['get', 'beta', 'b1'])).toEqual({ w: 1 })
    const list = await kitsyncJson<CollectionInfo[]>(home, ['list'])
    expect(list.find((c) => c.name === 'alpha')?.error?.code).toBe('DATA_CORRUPTION')
    expect(list.find((c) => c.name === 'beta')).toMatchObject({ records: 2 })
    await expectStoreKept(home, afterDamage, damaged, damagedValue)
  })
})
