import * as Y from 'yjs'
import { createHash } from 'node:crypto'
import { TypedEmitter } from '../../src/core/emitter.js'
import { KitsyncError } from '../../src/core/errors.js'
import { Hlc, nodeTagOf } from '../../src/core/hlc.js'
import type { JsonValue } from '../../src/core/json.js'
import type { UnitEvents, UnitId, UnitRecordWrite, Units, UnitUpdate } from '../../src/core/unit-types.js'
import type { ChangeEvent } from '../../src/core/workspace-types.js'
import type { FolderEvents, FolderHost, RecordChangeEvent } from '../../src/daemon/folder-host.js'

/**
 * Devices of one workspace in memory, for the folder engine's unit tests: records with a
 * per-field last-writer-wins rule (the `merge` kind's), units as Yjs updates, blobs, and a
 * network that holds every message until `deliver` hands them over in a seeded random order.
 * A device set offline neither sends nor receives until it is back (its catch-up).
 */

type Payload =
  | { kind: 'record'; collection: string; key: string; fields: Record<string, { t: string; v: JsonValue }> }
  | { kind: 'unit'; from: string; collection: string; unit: string; update: Uint8Array }
type Message = Payload & { to: string; sender: string }

export class FakeFolderNet {
  readonly devices = new Map<string, FakeDevice>()
  private inFlight: Message[] = []

  constructor(private readonly random: () => number) {}

  add(id: string): FakeDevice {
    const d = new FakeDevice(id, this)
    this.devices.set(id, d)
    return d
  }

  send(from: string, m: Payload): void {
    for (const id of this.devices.keys()) if (id !== from) this.inFlight.push({ ...m, to: id, sender: from })
  }

  /** Messages between two online devices not handed over yet (an offline device neither sends nor receives). */
  deliverable(): number {
    return this.inFlight.filter((m) => this.connected(m)).length
  }

  private connected(m: Message): boolean {
    return this.devices.get(m.to)?.online === true && this.devices.get(m.sender)?.online === true
  }

  /** Hand over every deliverable message, in random order. */
  deliver(): number {
    let n = 0
    for (;;) {
      const ready = this.inFlight.map((m, i) => [m, i] as const).filter(([m]) => this.connected(m))
      if (ready.length === 0) return n
      const [m, i] = ready[Math.floor(this.random() * ready.length)] as (typeof ready)[number]
      this.inFlight.splice(i, 1)
      const d = this.devices.get(m.to) as FakeDevice
      if (m.kind === 'record') d.receiveRecord(m.collection, m.key, m.fields)
      else d.fakeUnits.receive(m.collection, m.unit, m.update, m.from)
      n++
    }
  }

  blobFromAnyone(hash: string, asking: string): Uint8Array | undefined {
    for (const d of this.devices.values()) {
      if (d.deviceId === asking || !d.online) continue
      const b = d.fakeUnits.blobs.get(hash)
      if (b !== undefined) return b
    }
    return undefined
  }
}

export class FakeDevice implements FolderHost {
  readonly clock: Hlc
  online = true
  readonly records_ = new Map<string, Map<string, Map<string, { t: string; v: JsonValue }>>>()
  readonly fakeUnits: FakeUnits
  readonly events: { event: string; payload: unknown }[] = []
  private readonly changes = new TypedEmitter<{ change: ChangeEvent }>()

  constructor(
    readonly deviceId: string,
    readonly net: FakeFolderNet,
  ) {
    this.clock = new Hlc(nodeTagOf(deviceId))
    this.fakeUnits = new FakeUnits(this)
  }

  get units(): Units {
    return this.fakeUnits
  }

  stamp(): string {
    return this.clock.now()
  }

  observe(stamp: string): void {
    this.clock.observe(stamp)
  }

  async records(collection: string): Promise<Record<string, JsonValue>> {
    const out: Record<string, JsonValue> = {}
    for (const key of this.records_.get(collection)?.keys() ?? []) out[key] = this.value(collection, key) as JsonValue
    return out
  }

  value(collection: string, key: string): JsonValue | undefined {
    const rec = this.records_.get(collection)?.get(key)
    if (rec === undefined) return undefined
    const v: Record<string, JsonValue> = {}
    for (const [f, slot] of [...rec.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) v[f] = slot.v
    return v
  }

  collectionNames(): string[] {
    return [...this.records_.keys()]
  }

  async watchRecords(collection: string, listener: (e: RecordChangeEvent) => void): Promise<() => void> {
    return this.changes.on('change', (e) => {
      if (e.collection === collection) listener({ key: e.key, value: e.value, source: e.source })
    })
  }

  emit<K extends keyof FolderEvents>(event: K, payload: FolderEvents[K]): void {
    this.events.push({ event, payload })
  }

  writeLocal(collection: string, records: readonly UnitRecordWrite[]): void {
    for (const r of records) {
      const t = this.clock.now()
      const fields: Record<string, { t: string; v: JsonValue }> = {}
      for (const [f, v] of Object.entries(r.fields ?? {})) fields[f] = { t, v }
      this.merge(collection, r.key, fields)
      this.changes.emit('change', { collection, key: r.key, op: 'set', value: this.value(collection, r.key) as JsonValue, source: 'local', at: Date.now() })
      this.net.send(this.deviceId, { kind: 'record', collection, key: r.key, fields })
    }
  }

  receiveRecord(collection: string, key: string, fields: Record<string, { t: string; v: JsonValue }>): void {
    for (const s of Object.values(fields)) this.clock.observe(s.t)
    if (this.merge(collection, key, fields))
      this.changes.emit('change', { collection, key, op: 'set', value: this.value(collection, key) as JsonValue, source: 'remote', at: Date.now() })
  }

  private merge(collection: string, key: string, fields: Record<string, { t: string; v: JsonValue }>): boolean {
    let coll = this.records_.get(collection)
    if (coll === undefined) this.records_.set(collection, (coll = new Map()))
    let rec = coll.get(key)
    if (rec === undefined) coll.set(key, (rec = new Map()))
    let changed = false
    for (const [f, slot] of Object.entries(fields)) {
      const had = rec.get(f)
      if (had !== undefined && had.t >= slot.t) continue
      rec.set(f, slot)
      changed = true
    }
    return changed
  }
}

const keyOf = (collection: string, unit: string): string => `${collection}\u0000${unit}`

export class FakeUnits implements Units {
  readonly stored = new Map<string, { updates: Uint8Array[]; doc?: Y.Doc }>()
  readonly blobs = new Map<string, Uint8Array>()
  private readonly emitter = new TypedEmitter<UnitEvents>()

  constructor(private readonly device: FakeDevice) {}

  async open(collection: string, unit: UnitId, make: () => Y.Doc): Promise<Y.Doc> {
    const k = keyOf(collection, unit)
    let s = this.stored.get(k)
    if (s === undefined) this.stored.set(k, (s = { updates: [] }))
    if (s.doc !== undefined) return s.doc
    const doc = make()
    for (const u of s.updates) Y.applyUpdate(doc, u, 'store')
    s.doc = doc
    return doc
  }

  /** Units asked for by each openMany call (the folder engine's prefetch of a batch). */
  readonly openManyCalls: UnitId[][] = []

  openMany(collection: string, units: readonly UnitId[], make: () => Y.Doc): Map<UnitId, Promise<Y.Doc>> {
    this.openManyCalls.push([...units])
    return new Map(units.map((u) => [u, this.open(collection, u, make)]))
  }

  close(collection: string, unit: UnitId): void {
    const s = this.stored.get(keyOf(collection, unit))
    if (s !== undefined) delete s.doc
  }

  async commit(collection: string, updates: readonly UnitUpdate[], records: readonly UnitRecordWrite[] = []): Promise<void> {
    for (const u of updates) {
      const k = keyOf(collection, u.unit)
      let s = this.stored.get(k)
      if (s === undefined) this.stored.set(k, (s = { updates: [] }))
      s.updates.push(u.update)
      this.device.net.send(this.device.deviceId, { kind: 'unit', from: this.device.deviceId, collection, unit: u.unit, update: u.update })
    }
    this.device.writeLocal(collection, records)
  }

  receive(collection: string, unit: string, update: Uint8Array, from: string): void {
    const k = keyOf(collection, unit)
    let s = this.stored.get(k)
    if (s === undefined) this.stored.set(k, (s = { updates: [] }))
    s.updates.push(update)
    if (s.doc !== undefined) Y.applyUpdate(s.doc, update, 'sync')
    this.emitter.emit('unit:update', { collection, unit, update, from })
  }

  async list(collection: string): Promise<UnitId[]> {
    const prefix = `${collection}\u0000`
    return [...this.stored.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length))
  }

  async drop(collection: string, unit: UnitId): Promise<void> {
    this.stored.delete(keyOf(collection, unit))
  }

  async putBlob(hash: string, bytes: Uint8Array): Promise<void> {
    if (createHash('sha256').update(bytes).digest('hex') !== hash) throw new KitsyncError('DATA_CORRUPTION', 'blob hash mismatch')
    this.blobs.set(hash, bytes)
  }

  async getBlob(hash: string): Promise<Uint8Array | undefined> {
    const b = this.blobs.get(hash) ?? this.device.net.blobFromAnyone(hash, this.device.deviceId)
    if (b !== undefined) this.blobs.set(hash, b)
    return b
  }

  on<K extends keyof UnitEvents>(event: K, listener: (payload: UnitEvents[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }
}
