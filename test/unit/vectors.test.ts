import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { conflictId, settleConflict } from '../../src/core/conflicts.js'
import { isKitsyncError } from '../../src/core/errors.js'
import { formatHlc, Hlc, MAX_DRIFT_MS, nodeTagOf, parseHlc } from '../../src/core/hlc.js'
import type { JsonValue } from '../../src/core/json.js'
import { isKindName, KINDS } from '../../src/core/kinds.js'
import { RecordCollection } from '../../src/core/record-collection.js'
import { decodeEntry, type KvEntry } from '../../src/core/record-kv.js'
import { RECORDS_ARRAY, type RecordLayout } from '../../src/core/record-layout.js'
import type { DetectedConflict } from '../../src/core/record-resolve.js'
import type { FieldType } from '../../src/core/record-slots.js'
import type { ConflictPolicy, ConflictVersion } from '../../src/core/workspace-types.js'
import { confirmationCode, decodeToken, encodeToken, pairingProof, tokenId } from '../../src/protocol/pair-token.js'

/**
 * The conformance vectors of docs/vectors/*.json (format: docs/RECORDS.md, "Conformance
 * vectors") run against the implementation: RecordCollections on plain Y.Docs, each with its
 * own injected wall clock, device id and Yjs client id, settling the conflicts they find after
 * each merged update as the daemon does. Every case runs with the updates delivered as the
 * vector says and in other orders (reversed, seeded shuffles): every device, and a reader that
 * gets every update in that order, must compute the expected records and open conflicts.
 * Every case runs on both record layouts (a flat Y.Map, and the Y.Array of entries of
 * record-kv.ts): the records and conflicts are the same, the slots too (checked here).
 */

const DIR = new URL('../../docs/vectors/', import.meta.url)
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
const load = (file: string): Record<string, unknown> & { format: string } =>
  JSON.parse(readFileSync(new URL(file, DIR), 'utf8')) as Record<string, unknown> & { format: string }

interface DeviceSpec {
  id: string
  client: number
}

type Step =
  | { op: 'set'; device: string; wall: number; key: string; value: JsonValue; field?: string; error?: string }
  | { op: 'delete'; device: string; wall: number; key: string; error?: string }
  | { op: 'add' | 'remove'; device: string; wall: number; key: string; field: string; elements: string[]; error?: string }
  | { op: 'append'; device: string; wall: number; key: string; field: string; value: JsonValue; error?: string }
  | { op: 'resolve'; device: string; wall: number; conflict: string; take?: string; value?: JsonValue; error?: string }
  | { op: 'sync'; from: string; to: string; wall?: number }
  | { op: 'expect'; device: string; records?: Record<string, JsonValue>; conflicts?: ExpectedConflict[]; slots?: Record<string, unknown> }

interface ExpectedConflict {
  id: string
  key: string
  field?: string
  versions: ConflictVersion[]
}

interface RecordCase {
  name: string
  collection: string
  kind?: string
  policy?: ConflictPolicy
  fieldTypes?: Record<string, FieldType>
  devices?: Record<string, DeviceSpec>
  steps: Step[]
  expect: { records: Record<string, JsonValue>; conflicts?: ExpectedConflict[] }
}

interface RecordFile {
  format: 'kitsync-record-vectors/1'
  devices: Record<string, DeviceSpec>
  cases: RecordCase[]
}

const REMOTE = Symbol('remote')
const LOCAL = Symbol('local')
/** The reader: a device that writes nothing of its own and gets every update of the history, in one order. */
const READER: DeviceSpec = { id: '12D3KooWSrKnMZUcSxK8G7wmBbXdU8nFEfWGhLu6H8xjn8LmCSJb', client: 999_999 }

class Device {
  wall: number
  readonly doc: Y.Doc
  readonly collection: RecordCollection
  private readonly found: DetectedConflict[] = []

  constructor(
    readonly spec: DeviceSpec,
    c: RecordCase,
    wall: number,
    updates: Uint8Array[],
    readonly layout: RecordLayout,
  ) {
    this.wall = wall
    this.doc = new Y.Doc()
    this.doc.clientID = spec.client
    const kind = c.kind === undefined ? undefined : isKindName(c.kind) ? KINDS[c.kind] : undefined
    if (c.kind !== undefined && kind === undefined) throw new Error(`unknown kind ${c.kind}`)
    this.collection = new RecordCollection(c.collection, this.doc, {
      clock: new Hlc(nodeTagOf(spec.id), () => this.wall),
      policy: c.policy ?? kind?.policy ?? 'merge',
      fieldTypes: c.fieldTypes ?? { ...(kind?.fieldTypes ?? {}) },
      layout,
    })
    // As the daemon does: conflicts found in a merged update are settled after its transaction.
    this.collection.onConflict((found) => this.found.push(...found))
    this.doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin !== REMOTE) updates.push(update)
    })
  }

  receive(update: Uint8Array): void {
    Y.applyUpdate(this.doc, update, REMOTE)
    for (const c of this.found.splice(0)) settleConflict(this.collection, c, LOCAL, this.spec.id, this.wall)
  }

  records(): Record<string, JsonValue> {
    return this.collection.entries()
  }

  conflicts(): ExpectedConflict[] {
    return this.collection
      .openConflicts()
      .map((c) => ({ id: c.id, key: c.key, ...(c.field === undefined ? {} : { field: c.field }), versions: c.versions }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  slots(): Record<string, unknown> {
    if (this.layout === 1) return Object.fromEntries(this.doc.getMap('records').entries())
    // Layout 2: the live entries, one per key once duplicates are deleted.
    const entries = this.doc
      .getArray<Uint8Array>(RECORDS_ARRAY)
      .toArray()
      .map((bytes) => decodeEntry(bytes) as KvEntry<unknown>)
    expect(new Set(entries.map((e) => e.k)).size, 'one entry per key').toBe(entries.length)
    return Object.fromEntries(entries.map((e) => [e.k, e.v]))
  }
}

function sync(from: Device, to: Device): void {
  to.receive(Y.encodeStateAsUpdate(from.doc, Y.encodeStateVector(to.doc)))
}

/** A deterministic permutation (mulberry32). */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

const ORDERS = ['given', 'reversed', 'shuffle-1', 'shuffle-2'] as const
type Order = (typeof ORDERS)[number]

function inOrder<T>(items: readonly T[], order: Order): T[] {
  if (order === 'given') return [...items]
  if (order === 'reversed') return [...items].reverse()
  return shuffle(items, order === 'shuffle-1' ? 1 : 2)
}

function expectCode(fn: () => unknown, code: string | undefined): void {
  if (code === undefined) {
    fn()
    return
  }
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(isKitsyncError(caught) ? caught.code : caught).toBe(code)
}

/** Run the steps of a case; returns the devices and every update they made, in the order made. */
function runHistory(c: RecordCase, specs: Record<string, DeviceSpec>, layout: RecordLayout): { devices: Map<string, Device>; updates: Uint8Array[] } {
  const updates: Uint8Array[] = []
  const walls = c.steps.flatMap((s) => ('wall' in s && s.wall !== undefined ? [s.wall] : []))
  const start = Math.min(...walls)
  const devices = new Map(Object.entries(specs).map(([name, spec]) => [name, new Device(spec, c, start, updates, layout)]))
  const dev = (name: string): Device => {
    const d = devices.get(name)
    if (d === undefined) throw new Error(`${c.name}: no device ${name}`)
    return d
  }
  for (const step of c.steps) {
    if (step.op === 'sync') {
      const to = dev(step.to)
      if (step.wall !== undefined) to.wall = step.wall
      sync(dev(step.from), to)
      continue
    }
    if (step.op === 'expect') {
      const d = dev(step.device)
      if (step.records !== undefined) expect(d.records(), `${step.device} records`).toEqual(step.records)
      if (step.conflicts !== undefined) expect(d.conflicts(), `${step.device} conflicts`).toEqual(step.conflicts)
      if (step.slots !== undefined) expect(d.slots(), `${step.device} slots`).toEqual(step.slots)
      continue
    }
    const d = dev(step.device)
    d.wall = step.wall
    const before = updates.length
    const col = d.collection
    expectCode(() => {
      switch (step.op) {
        case 'set':
          return col.set(step.key, step.value, LOCAL, step.field)
        case 'delete':
          return col.delete(step.key, LOCAL)
        case 'add':
          return col.addToSet(step.key, step.field, step.elements, LOCAL)
        case 'remove':
          return col.removeFromSet(step.key, step.field, step.elements, LOCAL)
        case 'append':
          return col.appendToLog(step.key, step.field, step.value, LOCAL)
        case 'resolve': {
          const open = col.openConflicts().find((o) => o.id === step.conflict)
          if (open === undefined) throw new Error(`${c.name}: ${step.device} has no open conflict ${step.conflict}`)
          // As LocalWorkspace.resolve: the chosen version (or value) is written as a new write.
          const version = open.versions.find((v) => v.device === step.take || v.hlc === step.take)
          const value = step.value ?? version?.value
          col.doc.transact(() => {
            if (value === undefined) col.delete(open.key, LOCAL)
            else col.set(open.key, value, LOCAL, open.field)
            col.clearConflict(open.id, LOCAL)
          }, LOCAL)
          col.collapse(open.key, LOCAL)
          col.dropSettledConflicts(LOCAL)
          return
        }
      }
    }, step.error)
    if (step.error !== undefined) expect(updates.length, `${step.op} refused with ${step.error} writes nothing`).toBe(before)
  }
  return { devices, updates }
}

/** Exchange until every device holds everything (settling writes included). */
function converge(devices: Device[]): void {
  for (let round = 0; round < 8; round++) {
    for (const a of devices) for (const b of devices) if (a !== b) sync(a, b)
    const vectors = new Set(devices.map((d) => Buffer.from(Y.encodeStateVector(d.doc)).toString('hex')))
    if (vectors.size === 1) return
  }
  throw new Error('devices did not converge in 8 rounds')
}

const LAYOUTS: RecordLayout[] = [1, 2]

const recordCases = FILES.flatMap((file) => {
  const v = load(file)
  if (v.format !== 'kitsync-record-vectors/1') return []
  const f = v as unknown as RecordFile
  return f.cases.flatMap((c) => LAYOUTS.flatMap((layout) => ORDERS.map((order) => ({ file, name: c.name, order, layout, c, specs: c.devices ?? f.devices }))))
})

describe('record vectors (docs/vectors)', () => {
  it('finds the vector files', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(8)
    expect(recordCases.length).toBeGreaterThan(0)
  })

  it.each(recordCases)('$file: $name (layout $layout, updates $order)', ({ c, specs, order, layout }) => {
    const { devices, updates } = runHistory(c, specs, layout)
    const expected = c.expect.conflicts ?? []
    // A reader that receives every update of the history one by one, in this order.
    const walls = c.steps.flatMap((s) => ('wall' in s && s.wall !== undefined ? [s.wall] : []))
    const reader = new Device(READER, c, Math.max(...walls), [], layout)
    for (const u of inOrder(updates, order)) reader.receive(u)
    // Every update is integrated (none waits for another it depends on).
    const held = Y.decodeStateVector(Y.encodeStateVector(reader.doc))
    for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVectorFromUpdate(Y.mergeUpdates(updates))))
      expect(held.get(client), `reader holds client ${client}`).toBe(clock)
    expect(reader.records(), 'reader records').toEqual(c.expect.records)
    expect(reader.conflicts(), 'reader conflicts').toEqual(expected)
    // The devices themselves, once every update reached every device (in this order of devices).
    const all = inOrder([...devices.values()], order)
    converge(all)
    for (const d of all) {
      expect(d.records(), `records on ${d.spec.id}`).toEqual(c.expect.records)
      expect(d.conflicts(), `conflicts on ${d.spec.id}`).toEqual(expected)
    }
    // The ids are the documented derivation of the versions' stamps.
    for (const e of expected)
      expect(
        conflictId(c.collection, {
          key: e.key,
          ...(e.field === undefined ? {} : { field: e.field }),
          versions: e.versions,
          winner: e.versions[0] as ConflictVersion,
        }),
      ).toBe(e.id)
  })
})

// ---- clock vectors ------------------------------------------------------------------------

interface HlcFile {
  format: 'kitsync-hlc-vectors/1'
  maxDriftMs: number
  stamps: { ms: number; counter: number; node: string; stamp: string }[]
  invalid: string[]
  sorted: string[]
  nodeTags: { deviceId: string; tag: string }[]
  clocks: { name: string; node: string; steps: ({ wall: number; now: string } | { wall: number; observe: string; accepted: boolean })[] }[]
}

const hlcFiles = FILES.map((file) => ({ file, v: load(file) })).filter(({ v }) => v.format === 'kitsync-hlc-vectors/1') as unknown as {
  file: string
  v: HlcFile
}[]

describe.each(hlcFiles)('clock vectors: $file', ({ v }) => {
  it('drift bound', () => expect(v.maxDriftMs).toBe(MAX_DRIFT_MS))
  it.each(v.stamps)('formats and parses $stamp', (s) => {
    expect(formatHlc(s)).toBe(s.stamp)
    expect(parseHlc(s.stamp)).toEqual({ ms: s.ms, counter: s.counter, node: s.node })
  })
  it.each(v.invalid)('is not a stamp: %j', (s) => expect(parseHlc(s)).toBeUndefined())
  it('stamps sort like the clock', () => expect([...v.sorted].reverse().sort()).toEqual(v.sorted))
  it.each(v.nodeTags)('node tag of $deviceId is $tag', ({ deviceId, tag }) => expect(nodeTagOf(deviceId)).toBe(tag))
  it.each(v.clocks)('clock: $name', ({ node, steps }) => {
    let wall = 0
    const clock = new Hlc(node, () => wall)
    steps.forEach((s, i) => {
      wall = s.wall
      if ('now' in s) expect(clock.now(), `step ${i}`).toBe(s.now)
      else expect(clock.observe(s.observe), `step ${i}`).toBe(s.accepted)
    })
  })
})

// ---- pairing vectors ----------------------------------------------------------------------

interface PairingFile {
  format: 'kitsync-pairing-vectors/1'
  cases: {
    name: string
    secret: string
    tokenId: string
    inviter: string
    joiner: string
    nonce: string
    mac: string
    confirmCode: string
    token?: { workspaceId: string; addresses: string[]; expiresAt: number; flags: number; text: string }
  }[]
}

const pairingFiles = FILES.map((file) => ({ file, v: load(file) })).filter(({ v }) => v.format === 'kitsync-pairing-vectors/1') as unknown as {
  file: string
  v: PairingFile
}[]

describe.each(pairingFiles)('pairing vectors: $file', ({ v }) => {
  it.each(v.cases)('$name', (p) => {
    const secret = new Uint8Array(Buffer.from(p.secret, 'hex'))
    expect(tokenId(secret)).toBe(p.tokenId)
    const parts = { tokenId: p.tokenId, inviter: p.inviter, joiner: p.joiner, nonce: p.nonce }
    expect(pairingProof(secret, parts)).toBe(p.mac)
    expect(confirmationCode(secret, parts)).toBe(p.confirmCode)
    if (p.token !== undefined) {
      const t = {
        workspaceId: p.token.workspaceId,
        inviter: p.inviter,
        addresses: p.token.addresses,
        secret,
        expiresAt: p.token.expiresAt,
        flags: p.token.flags,
      }
      expect(encodeToken(t)).toBe(p.token.text)
      expect(decodeToken(p.token.text)).toEqual(t)
    }
  })
})
