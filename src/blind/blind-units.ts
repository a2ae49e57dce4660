import * as Y from 'yjs'
import { debugLog } from '../core/debug-log.js'
import { isKitsyncError } from '../core/errors.js'
import type { BlobItem, EnvelopeItem, UnitItem } from './blind-envelope.js'
import type { BlindUnitHost, UnitMark } from './client-types.js'
import { covers, mergeVector, updateClocks } from './state-vectors.js'

const log = debugLog('blind:units')

/** Plaintext bytes per entry of units or blobs (the store takes up to 32 MiB of ciphertext). */
export const UNIT_ENTRY_BYTES = 4 * 1024 * 1024
/** Largest unit update or blob that goes to the store (one entry each past UNIT_ENTRY_BYTES). */
const MAX_ITEM_BYTES = 30 * 1024 * 1024
/** Largest snapshot plaintext (the store refuses a snapshot over 64 MiB of ciphertext). */
export const MAX_SNAPSHOT_BYTES = 60 * 1024 * 1024

/** What becomes true of the store once an upload is acknowledged. */
export interface UnitAck {
  units: Map<string, Map<string, UnitMark>>
  blobs: Set<string>
}

export interface UnitBatch {
  items: EnvelopeItem[]
  ack: UnitAck
  bytes: number
}

const emptyAck = (): UnitAck => ({ units: new Map(), blobs: new Set() })

/**
 * The shared folders' content in one session with one store (blind-client-session.ts): per unit,
 * the state vector the store holds and the digest of this device's state it was last known to
 * cover (UnitMark), per blob whether it holds it. A unit goes up when its digest differs from its
 * mark: as the difference to the mark's state vector (with the whole delete set, as Yjs encodes
 * it: a deletion alone goes too). Marks move on acknowledgement and on download, and are kept one
 * row per unit (BlindUnitHost.saveMarks): an upload rewrites the rows it carried, nothing else.
 */
export class SessionUnits {
  private readonly marks = new Map<string, Promise<Map<string, UnitMark>>>()
  private blobMarks: Promise<Set<string>> | undefined
  /** Uploads sent and not yet acknowledged, in order: what the store will hold once they are stored. */
  private readonly inFlight: UnitAck[] = []

  constructor(
    private readonly host: BlindUnitHost,
    private readonly store: string,
  ) {}

  /** A store never seen: it holds nothing of this device's units. */
  async reset(): Promise<void> {
    this.marks.clear()
    this.blobMarks = Promise.resolve(new Set())
    await this.host.clearMarks(this.store)
  }

  private marksOf(collection: string): Promise<Map<string, UnitMark>> {
    let m = this.marks.get(collection)
    if (m === undefined) this.marks.set(collection, (m = this.host.loadMarks(this.store, collection)))
    return m
  }

  private blobsHeld(): Promise<Set<string>> {
    this.blobMarks ??= this.host.loadBlobMarks(this.store)
    return this.blobMarks
  }

  /** The mark once the uploads in flight are stored (see BlindClientSession.inFlightVector). */
  private async markOf(collection: string, unit: string): Promise<UnitMark | undefined> {
    let mark = (await this.marksOf(collection)).get(unit)
    for (const ack of this.inFlight) {
      const m = ack.units.get(collection)?.get(unit)
      if (m !== undefined) mark = { sv: mark === undefined ? m.sv : mergeVector(mark.sv, Y.decodeStateVector(m.sv)), digest: m.digest }
    }
    return mark
  }

  /**
   * Upload what the store lacks of these units (`undefined`: every unit of the collection whose
   * digest differs from its mark), in batches of about UNIT_ENTRY_BYTES handed to `send` in order.
   * `merged` (changes merged from a peer): only units with structs the store lacks.
   */
  async upload(collection: string, units: Iterable<string> | undefined, send: (batch: UnitBatch) => Promise<void>, merged = false): Promise<void> {
    if (!this.host.shares(collection)) return
    let todo: Iterable<string>
    if (units !== undefined) todo = units
    else {
      const list: string[] = []
      for (const { unit, digest } of await this.host.digests(collection)) if ((await this.markOf(collection, unit))?.digest !== digest) list.push(unit)
      todo = list
    }
    let batch: UnitBatch = { items: [], ack: emptyAck(), bytes: 0 }
    for (const unit of todo) {
      const state = await this.host.state(collection, unit)
      if (state === undefined) continue
      const mark = await this.markOf(collection, unit)
      if (mark?.digest === state.digest) continue
      const vector = Y.encodeStateVectorFromUpdate(state.update)
      if (merged && mark !== undefined && covers(mark.sv, vector)) continue
      const update = mark === undefined ? state.update : Y.diffUpdate(state.update, mark.sv)
      if (update.byteLength > MAX_ITEM_BYTES) {
        log(`a unit of ${update.byteLength} bytes is over ${MAX_ITEM_BYTES}: it does not go to the store`)
        continue
      }
      if (batch.bytes + update.byteLength > UNIT_ENTRY_BYTES && batch.items.length > 0) {
        await this.sendBatch(batch, send)
        batch = { items: [], ack: emptyAck(), bytes: 0 }
      }
      const sv = mergeVector(mark?.sv, Y.decodeStateVector(vector))
      batch.items.push({ kind: 'unit', collection, unit, update })
      setMark(batch.ack, collection, unit, { sv, digest: state.digest })
      batch.bytes += update.byteLength
    }
    if (batch.items.length > 0) await this.sendBatch(batch, send)
  }

  /** Upload the blobs the collection's records name that the store does not hold and this device does. */
  async uploadBlobs(collection: string, send: (batch: UnitBatch) => Promise<void>): Promise<void> {
    if (!this.host.shares(collection)) return
    const held = await this.blobsHeld()
    let batch: UnitBatch = { items: [], ack: emptyAck(), bytes: 0 }
    for (const hash of await this.host.blobsOf(collection)) {
      if (held.has(hash) || this.inFlight.some((a) => a.blobs.has(hash)) || batch.ack.blobs.has(hash)) continue
      const bytes = await this.host.blob(hash)
      if (bytes === undefined || bytes.byteLength > MAX_ITEM_BYTES) continue // not here yet (its blob:stored asks again), or too large
      if (batch.bytes + bytes.byteLength > UNIT_ENTRY_BYTES && batch.items.length > 0) {
        await this.sendBatch(batch, send)
        batch = { items: [], ack: emptyAck(), bytes: 0 }
      }
      batch.items.push({ kind: 'blob', hash, bytes })
      batch.ack.blobs.add(hash)
      batch.bytes += bytes.byteLength
    }
    if (batch.items.length > 0) await this.sendBatch(batch, send)
  }

  private async sendBatch(batch: UnitBatch, send: (batch: UnitBatch) => Promise<void>): Promise<void> {
    this.inFlight.push(batch.ack)
    try {
      await send(batch)
    } catch (err) {
      this.forget(batch.ack)
      throw err
    }
  }

  /** The whole content of the shared folders, for a snapshot; undefined when over MAX_SNAPSHOT_BYTES. */
  async snapshot(budget: number): Promise<UnitBatch | undefined> {
    const out: UnitBatch = { items: [], ack: emptyAck(), bytes: 0 }
    for (const collection of this.host.collections()) {
      if (!this.host.shares(collection)) continue
      for (const { unit } of await this.host.digests(collection)) {
        const state = await this.host.state(collection, unit)
        if (state === undefined) continue
        out.bytes += state.update.byteLength
        if (out.bytes > budget) return undefined
        out.items.push({ kind: 'unit', collection, unit, update: state.update })
        const old = (await this.marksOf(collection)).get(unit)
        setMark(out.ack, collection, unit, { sv: mergeVector(old?.sv, Y.decodeStateVector(Y.encodeStateVectorFromUpdate(state.update))), digest: state.digest })
      }
      for (const hash of await this.host.blobsOf(collection)) {
        if (out.ack.blobs.has(hash)) continue
        const bytes = await this.host.blob(hash)
        if (bytes === undefined) continue
        out.bytes += bytes.byteLength
        if (out.bytes > budget) return undefined
        out.items.push({ kind: 'blob', hash, bytes })
        out.ack.blobs.add(hash)
      }
    }
    return out
  }

  /** A snapshot about to be sent: its marks are in flight like an upload's. */
  sending(ack: UnitAck): void {
    this.inFlight.push(ack)
  }

  /** The store acknowledged the upload that carried `ack`: its marks are true now, and kept. */
  async acknowledged(ack: UnitAck): Promise<void> {
    this.forget(ack)
    for (const [collection, units] of ack.units) {
      const marks = await this.marksOf(collection)
      const rows: [string, UnitMark][] = []
      for (const [unit, m] of units) {
        const old = marks.get(unit)
        const mark = { sv: old === undefined ? m.sv : mergeVector(old.sv, Y.decodeStateVector(m.sv)), digest: m.digest }
        marks.set(unit, mark)
        rows.push([unit, mark])
      }
      await this.host.saveMarks(this.store, collection, rows)
    }
    if (ack.blobs.size > 0) {
      const held = await this.blobsHeld()
      for (const h of ack.blobs) held.add(h)
      await this.host.saveBlobMarks(this.store, ack.blobs)
    }
  }

  private forget(ack: UnitAck): void {
    const i = this.inFlight.indexOf(ack)
    if (i >= 0) this.inFlight.splice(i, 1)
  }

  /**
   * Apply units and blobs downloaded from the store. A unit's mark takes the clocks of its
   * updates; its digest moves to the new state when the store held all of this device's state
   * before (the mark's digest was the state's, or nothing was stored here), so what came from the
   * store is not uploaded back. Resolves true when it skipped units of a folder not shared here.
   */
  async apply(items: readonly (UnitItem | BlobItem)[]): Promise<boolean> {
    let skipped = false
    const byUnit = new Map<string, { collection: string; unit: string; updates: Uint8Array[] }>()
    const blobs: BlobItem[] = []
    for (const item of items) {
      if (item.kind === 'blob') {
        blobs.push(item)
        continue
      }
      const id = `${item.collection}\0${item.unit}`
      const u = byUnit.get(id)
      if (u === undefined) byUnit.set(id, { collection: item.collection, unit: item.unit, updates: [item.update] })
      else u.updates.push(item.update)
    }
    const rows = new Map<string, [string, UnitMark][]>()
    for (const { collection, unit, updates } of byUnit.values()) {
      if (!this.host.shares(collection)) {
        skipped = true
        continue
      }
      const marks = await this.marksOf(collection)
      const mark = marks.get(unit)
      let before: Awaited<ReturnType<BlindUnitHost['state']>>
      let after: typeof before
      try {
        before = await this.host.state(collection, unit)
        for (const u of updates) await this.host.apply(collection, unit, u, this.store)
        after = await this.host.state(collection, unit)
      } catch (err) {
        // A malformed unit id or update (sealed by a member, so only a faulty or hostile one):
        // skipped, as a peer's would be, rather than stopping every catch-up at this entry. A
        // storage failure stops the session: the cursor stays before the entry.
        if (!isKitsyncError(err, 'PROTOCOL_ERROR') && !isKitsyncError(err, 'INVALID_NAME')) throw err
        log(`a unit from the store was skipped (${err.message})`)
        continue
      }
      let sv = mark?.sv
      for (const u of updates) sv = mergeVector(sv, updateClocks(u))
      const covered = before === undefined || before.digest === mark?.digest
      const next = { sv: sv as Uint8Array, digest: covered && after !== undefined ? after.digest : (mark?.digest ?? -1) }
      marks.set(unit, next)
      let list = rows.get(collection)
      if (list === undefined) rows.set(collection, (list = []))
      list.push([unit, next])
    }
    for (const [collection, list] of rows) await this.host.saveMarks(this.store, collection, list)
    if (blobs.length > 0) {
      const held = await this.blobsHeld()
      const stored: string[] = []
      for (const b of blobs) {
        // Whichever folder names it: a blob is checked against its hash, and placed only where a record names it.
        try {
          await this.host.putBlob(b.hash, b.bytes)
        } catch (err) {
          // Bytes that do not hash to their name (DATA_CORRUPTION from the hash check), or no hash at all.
          if (!isKitsyncError(err, 'DATA_CORRUPTION') && !isKitsyncError(err, 'INVALID_ARGUMENT') && !isKitsyncError(err, 'INVALID_NAME')) throw err
          log(`a blob from the store was skipped (${err.message})`)
          continue
        }
        held.add(b.hash)
        stored.push(b.hash)
      }
      await this.host.saveBlobMarks(this.store, stored)
    }
    return skipped
  }
}

function setMark(ack: UnitAck, collection: string, unit: string, mark: UnitMark): void {
  let m = ack.units.get(collection)
  if (m === undefined) ack.units.set(collection, (m = new Map()))
  m.set(unit, mark)
}
