import * as Y from 'yjs'
import { fromBase64 as unb64, toBase64 as b64 } from 'lib0/buffer'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { isEmptyDoc } from '../core/yjs-internals.js'
import type { PeerLink } from '../sync/sync-host.js'
import { open, seal, type BlobItem, type EnvelopeItem, type UnitItem } from './blind-envelope.js'
import { BLIND_PROTOCOL_VERSION, BlindType, decodeBlindFrame, encodeBlindFrame, type BlindFrame } from './blind-frames.js'
import { MAX_SNAPSHOT_BYTES, SessionUnits, type UnitAck, type UnitBatch } from './blind-units.js'
import type { BlindSessionOwner, StoreRecord } from './client-types.js'
import { covers, EMPTY_SV, mergeVector, updateClocks } from './state-vectors.js'

const log = debugLog('blind:client')

/**
 * One session of a trusted device with one store (see blind-client.ts): the hello, the
 * catch-up (entries decrypted in batches, merged, made durable, then the cursor moves), the
 * uploads of what the store lacks with their acknowledgements, and the snapshots.
 */
export class BlindClientSession {
  readonly peerId: string
  live = false
  private closed = false
  private inbox: Promise<void> = Promise.resolve()
  private queue: BlindFrame[] = []
  private draining = false
  private readonly pending: { kind: 'put' | 'snapshot'; vectors: Map<string, Uint8Array>; units?: UnitAck }[] = []
  /** The shared folders' content with this store (blind-units.ts); absent when the host has none. */
  private readonly units: SessionUnits | undefined
  /** A snapshot would be over what the store takes: none is tried again in this session. */
  private snapshotTooLarge = false
  /** Folders whose blobs are to be scanned by an upload not started yet. */
  private readonly blobScans = new Set<string>()
  private readonly dirty: Set<string>
  private sinceCount = 0
  private sinceBytes = 0
  private snapshotting = false
  /** The random wait before a snapshot (policy.jitterMs): running, or over. */
  private snapshotWait: { timer?: ReturnType<typeof setTimeout>; over: boolean } | undefined
  private uploading: Promise<void> = Promise.resolve()
  private saveTimer = false
  /** Uploads asked for and not yet acknowledged (or found to have nothing to send). */
  private outstanding = 0
  /** Settles when the last save of this session's state is done. */
  saved: Promise<void> = Promise.resolve()

  constructor(
    private readonly client: BlindSessionOwner,
    private readonly link: PeerLink,
    private readonly record: StoreRecord,
  ) {
    this.peerId = link.peerId
    this.dirty = new Set(record.dirty)
    this.units = client.host.units === undefined ? undefined : new SessionUnits(client.host.units, link.peerId)
  }

  get cursor(): number {
    return this.record.cursor
  }

  /** Uploads in flight, or local changes the store has not acknowledged. */
  get unacknowledged(): boolean {
    return this.outstanding > 0 || this.dirty.size > 0 || this.pending.length > 0
  }

  start(): void {
    this.send({
      type: BlindType.HELLO,
      version: BLIND_PROTOCOL_VERSION,
      workspaceId: this.client.host.workspaceId,
      storeId: this.record.storeId,
      cursor: this.record.cursor,
    })
  }

  receive(bytes: Uint8Array): void {
    if (this.closed) return
    try {
      this.queue.push(decodeBlindFrame(bytes))
    } catch (err) {
      this.close(toKitsyncError(err))
      return
    }
    if (!this.draining) {
      this.draining = true
      this.inbox = this.inbox.then(() => this.drain()).catch((err: unknown) => this.close(toKitsyncError(err)))
    }
  }

  idle(): Promise<void> {
    return this.inbox
  }

  close(error?: KitsyncError): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.snapshotWait?.timer)
    this.live = false
    this.link.close(error)
    // Uploads not acknowledged: the next session sends them again.
    for (const p of this.pending.splice(0)) for (const name of p.vectors.keys()) if (p.kind === 'put') this.dirty.add(name)
    void this.save().catch(() => undefined) // logged by save(); the next session saves again
    this.client.removed(this, error)
  }

  /** @internal Collections changed (true: changed here); uploaded now if live. */
  noteChanges(changed: Map<string, boolean>): void {
    for (const [name, local] of changed) if (local) this.dirty.add(name)
    if (!this.live) return
    this.upload([...changed.keys()], changed)
    // A folder's manifest changed: a binary file's blob may be new.
    const folders = this.client.host.units?.collections().filter((c) => changed.has(c)) ?? []
    if (folders.length > 0) this.uploadUnits(new Map(), folders)
  }

  /** @internal Units changed (here, or merged from a peer), and collections whose blobs may be new; uploaded now if live. */
  noteUnits(units: Map<string, Set<string>>, blobs: Iterable<string>, merged = false): void {
    if (this.live) this.uploadUnits(units, blobs, merged)
  }

  private send(frame: BlindFrame): void {
    if (!this.closed) this.link.send(encodeBlindFrame(frame))
  }

  /** Handle every frame queued so far, the entries in one batch (decrypted in parallel, merged per collection). */
  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const frames = this.queue
      this.queue = []
      let batch: (BlindFrame & { type: 5 | 7 })[] = []
      for (const frame of frames) {
        if (frame.type === BlindType.ENTRY || frame.type === BlindType.SNAPSHOT) {
          batch.push(frame)
          continue
        }
        if (batch.length > 0) await this.apply(batch)
        batch = []
        await this.handle(frame)
      }
      if (batch.length > 0) await this.apply(batch)
    }
    this.draining = false
  }

  private async handle(frame: BlindFrame): Promise<void> {
    if (this.closed) return
    switch (frame.type) {
      case BlindType.ERROR:
        this.close()
        return
      case BlindType.WELCOME:
        if (frame.storeId !== this.record.storeId) {
          // A store we never saw (or one that lost its data): start from zero with it.
          this.record.storeId = frame.storeId
          this.record.cursor = 0
          this.record.sv = {}
          delete this.record.partial
          await this.units?.reset()
        }
        this.sinceCount = frame.sinceCount
        this.sinceBytes = frame.sinceBytes
        return
      case BlindType.LIVE:
        this.live = true
        await this.save()
        this.client.emit('live', { peerId: this.peerId, head: frame.head })
        // Upload whatever the store lacks: every collection whose state is ahead, and local changes.
        this.upload([...new Set([...this.client.host.collectionNames(), ...this.dirty])], new Map())
        // And what it lacks of the shared folders' content: every unit whose state moved since the store was known to hold it.
        this.uploadUnits(undefined, this.client.host.units?.collections() ?? [])
        await this.uploading
        this.maybeSnapshot()
        return
      case BlindType.ACK: {
        const done = this.pending.shift()
        if (done === undefined) throw new KitsyncError('PROTOCOL_ERROR', 'acknowledgement of nothing')
        for (const [name, vector] of done.vectors) {
          const old = this.record.sv[name]
          this.record.sv[name] = b64(mergeVector(old === undefined ? undefined : unb64(old), Y.decodeStateVector(vector)))
        }
        if (done.units !== undefined) await this.units?.acknowledged(done.units)
        if (done.kind === 'put') {
          this.outstanding = Math.max(0, this.outstanding - 1)
          this.record.cursor = Math.max(this.record.cursor, frame.seq)
          this.sinceCount++
        } else {
          this.sinceCount = 0
          this.sinceBytes = 0
          this.snapshotting = false
        }
        this.record.dirty = [...this.dirty]
        this.scheduleSave()
        this.client.emit('uploaded', { peerId: this.peerId, seq: frame.seq })
        this.maybeSnapshot()
        return
      }
      default:
        throw new KitsyncError('PROTOCOL_ERROR', `unexpected blind frame type ${frame.type} from the store`)
    }
  }

  /** Decrypt a batch of entries (and a snapshot), merge them, make them durable, move the cursor. */
  private async apply(frames: (BlindFrame & { type: 5 | 7 })[]): Promise<void> {
    const host = this.client.host
    const opened = await Promise.all(
      frames.map(async (f) => {
        const seq = f.type === BlindType.ENTRY ? f.seq : f.covers
        const key = host.key(f.epoch)
        // Without the key of that epoch the device cannot go on: stop here, the cursor stays
        // before it, and a later session (after a key pull) takes it from there.
        if (key === undefined) return { seq, missingKey: f.epoch, items: [] as EnvelopeItem[] }
        try {
          return {
            seq,
            items: await open(key, { workspaceId: host.workspaceId, epoch: f.epoch, kind: f.type === BlindType.ENTRY ? 'entry' : 'snapshot' }, f.ciphertext),
          }
        } catch (err) {
          this.client.emit('skipped', { peerId: this.peerId, seq, reason: toKitsyncError(err).message })
          return { seq, items: [] as EnvelopeItem[] }
        }
      }),
    )
    const byCollection = new Map<string, Uint8Array[]>()
    const content: (UnitItem | BlobItem)[] = []
    let cursor = this.record.cursor
    let missing: number | undefined
    for (const o of opened) {
      if ('missingKey' in o && o.missingKey !== undefined) {
        missing = o.missingKey
        break
      }
      for (const item of o.items) {
        if (item.kind !== undefined) {
          content.push(item)
          continue
        }
        let list = byCollection.get(item.collection)
        if (list === undefined) byCollection.set(item.collection, (list = []))
        list.push(item.update)
      }
      cursor = Math.max(cursor, o.seq)
      if (this.live) this.sinceCount++
    }
    if (this.live) for (const f of frames) this.sinceBytes += f.ciphertext.byteLength
    for (const [name, updates] of byCollection) {
      // A local-only collection takes nothing from the store either (as from a peer).
      if (!/^_?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) continue
      if (!this.client.shares(name)) {
        this.record.partial = true
        continue
      }
      const doc = await this.client.doc(name)
      // What the store holds, learnt from what it sent. When the document held nothing before
      // (and no structs wait for missing ones), everything it holds after this transaction came
      // from these updates and all of them: its state vector tells their clocks, without
      // decoding each update a second time (that was a third of a catch-up).
      // Otherwise, the clocks of each update: what the document already had (from a peer, the
      // usual case: devices get each change from each other and from the store) is in the store
      // too, and a device that learnt only what it gained uploaded it all back (each of twenty
      // devices that joined re-uploaded two 820 KB collections, sent on to the nineteen others).
      const empty = isEmptyDoc(doc)
      let clocks = new Map<number, number>()
      doc.transact(() => {
        for (const u of updates) {
          Y.applyUpdate(doc, u)
          if (!empty) for (const [c, k] of updateClocks(u)) if ((clocks.get(c) ?? 0) < k) clocks.set(c, k)
        }
      }, this)
      if (empty) clocks = Y.decodeStateVector(Y.encodeStateVector(doc))
      const old = this.record.sv[name]
      this.record.sv[name] = b64(mergeVector(old === undefined ? undefined : unb64(old), clocks))
    }
    for (const name of byCollection.keys()) await host.flushDoc?.(name)
    // After the collections: a folder's manifest is there when its files' content lands.
    if (content.length > 0 && this.units !== undefined && (await this.units.apply(content))) this.record.partial = true
    this.record.cursor = cursor
    this.scheduleSave()
    this.client.emit('applied', { peerId: this.peerId, entries: opened.length, cursor })
    if (missing !== undefined) this.close(new KitsyncError('NOT_FOUND', `no workspace key of epoch ${missing} on this device yet`))
    else this.maybeSnapshot()
  }

  /** Upload, as one encrypted entry, what the store lacks of these collections. */
  private upload(names: string[], changed: Map<string, boolean>): void {
    this.outstanding++
    let sent = false
    this.uploading = this.uploading
      .then(async () => {
        if (this.closed || !this.live) return
        const current = this.client.host.currentKey()
        if (current === undefined) return
        const items: EnvelopeItem[] = []
        const vectors = new Map<string, Uint8Array>()
        for (const name of names) {
          if (!this.client.shares(name)) {
            // Local-only (perhaps since a change was noted): never uploaded, not even encrypted.
            this.dirty.delete(name)
            continue
          }
          const doc = this.client.host.collectionNames().includes(name) || this.dirty.has(name) ? await this.client.doc(name) : undefined
          if (doc === undefined) continue
          const sv = this.inFlightVector(name)
          const docSv = Y.encodeStateVector(doc)
          // Nothing new for the store: only a change merged from a peer that it already has.
          if (!this.dirty.has(name) && changed.get(name) !== true && covers(sv, docSv)) continue
          items.push({ collection: name, update: Y.encodeStateAsUpdate(doc, sv ?? EMPTY_SV) })
          vectors.set(name, docSv)
          this.dirty.delete(name)
        }
        if (items.length === 0 || this.closed) return
        const ciphertext = await seal(current.key, { workspaceId: this.client.host.workspaceId, epoch: current.epoch, kind: 'entry' }, items)
        this.pending.push({ kind: 'put', vectors })
        this.send({ type: BlindType.PUT, epoch: current.epoch, ciphertext })
        this.sinceBytes += ciphertext.byteLength
        sent = true
      })
      .catch((err: unknown) => this.close(toKitsyncError(err)))
      .finally(() => {
        if (!sent) this.outstanding = Math.max(0, this.outstanding - 1)
      })
  }

  /** Upload, in entries of about UNIT_ENTRY_BYTES, what the store lacks of these units (undefined: of every shared folder) and of these collections' blobs. */
  private uploadUnits(units: Map<string, Set<string>> | undefined, blobs: Iterable<string>, merged = false): void {
    const su = this.units
    if (su === undefined) return
    // A scan of a folder's blobs already waiting covers this one too (blobs arrive by the hundred in a catch-up).
    const folders = [...blobs].filter((c) => !this.blobScans.has(c))
    for (const c of folders) this.blobScans.add(c)
    if (units !== undefined && units.size === 0 && folders.length === 0) return
    this.outstanding++
    let sent = 0
    this.uploading = this.uploading
      .then(async () => {
        for (const c of folders) this.blobScans.delete(c)
        if (this.closed || !this.live) return
        const current = this.client.host.currentKey()
        if (current === undefined) return
        const send = async (batch: UnitBatch): Promise<void> => {
          const ciphertext = await seal(current.key, { workspaceId: this.client.host.workspaceId, epoch: current.epoch, kind: 'entry' }, batch.items)
          if (this.closed) return
          if (sent++ > 0) this.outstanding++
          this.pending.push({ kind: 'put', vectors: new Map(), units: batch.ack })
          this.send({ type: BlindType.PUT, epoch: current.epoch, ciphertext })
          this.sinceBytes += ciphertext.byteLength
        }
        const names = units === undefined ? (this.client.host.units?.collections() ?? []) : [...units.keys()]
        for (const name of names) if (!this.closed) await su.upload(name, units?.get(name), send, merged)
        for (const name of folders) if (!this.closed) await su.uploadBlobs(name, send)
      })
      .catch((err: unknown) => this.close(toKitsyncError(err)))
      .finally(() => {
        if (sent === 0) this.outstanding = Math.max(0, this.outstanding - 1)
      })
  }

  /**
   * What the store will hold of a collection once the uploads in flight are stored: the state
   * vector it acknowledged, merged with the vectors of the PUTs sent and not yet acknowledged
   * (the store handles them in order, or the session breaks: then they go again, see close).
   * Uploading the difference to this, not to the acknowledged vector alone, keeps each entry to
   * what is new: against the acknowledged vector, every PUT sent while others were in flight
   * carried all of them again (10,000 quick writes made 9.5-56 MB of entries instead of ~1 MB).
   */
  private inFlightVector(name: string): Uint8Array | undefined {
    const stored = this.record.sv[name]
    let sv: Uint8Array | undefined = stored === undefined ? undefined : unb64(stored)
    for (const p of this.pending) {
      const v = p.kind === 'put' ? p.vectors.get(name) : undefined
      if (v !== undefined) sv = mergeVector(sv, Y.decodeStateVector(v))
    }
    return sv
  }

  /** Past the thresholds, and with nothing in flight: replace what the store holds by one snapshot. */
  private maybeSnapshot(): void {
    const policy = this.client.policy
    // A device that skipped some of what the store holds (local-only, not selected) would drop it from the store.
    if (!this.live || this.snapshotting || this.snapshotTooLarge || this.record.partial === true || this.pending.length > 0) return
    if (this.sinceCount < policy.entries && this.sinceBytes < policy.bytes) return
    const jitter = policy.jitterMs ?? 0
    if (jitter > 0 && this.snapshotWait?.over !== true) {
      if (this.snapshotWait === undefined) {
        const wait: { timer?: ReturnType<typeof setTimeout>; over: boolean } = { over: false }
        wait.timer = setTimeout(() => {
          wait.over = true
          this.maybeSnapshot()
        }, Math.random() * jitter)
        wait.timer.unref?.()
        this.snapshotWait = wait
      }
      return
    }
    this.snapshotWait = undefined
    this.snapshotting = true
    this.uploading = this.uploading
      .then(async () => {
        const current = this.client.host.currentKey()
        if (current === undefined || this.closed) return
        const coversSeq = this.record.cursor
        const items: EnvelopeItem[] = []
        const vectors = new Map<string, Uint8Array>()
        let bytes = 0
        for (const name of this.client.host.collectionNames()) {
          if (!this.client.shares(name)) continue
          const doc = await this.client.doc(name)
          const update = Y.encodeStateAsUpdate(doc)
          items.push({ collection: name, update })
          vectors.set(name, Y.encodeStateVector(doc))
          bytes += update.byteLength
        }
        // The shared folders' content too: the snapshot replaces the entries that carried it.
        const content = this.units === undefined ? undefined : await this.units.snapshot(MAX_SNAPSHOT_BYTES - bytes)
        if (this.units !== undefined && content === undefined) {
          // Over what the store takes in one snapshot: the entries stay (the store grows, nothing is lost).
          log(`a snapshot for ${this.peerId} would be over ${MAX_SNAPSHOT_BYTES} bytes: the store keeps its entries`)
          this.snapshotTooLarge = true
          this.snapshotting = false
          return
        }
        if (content !== undefined) for (const item of content.items) items.push(item)
        const ciphertext = await seal(current.key, { workspaceId: this.client.host.workspaceId, epoch: current.epoch, kind: 'snapshot' }, items)
        if (this.closed) return
        if (content !== undefined) this.units?.sending(content.ack)
        this.pending.push(content === undefined ? { kind: 'snapshot', vectors } : { kind: 'snapshot', vectors, units: content.ack })
        this.send({ type: BlindType.SNAPSHOT_PUT, covers: coversSeq, epoch: current.epoch, ciphertext })
      })
      .catch((err: unknown) => this.close(toKitsyncError(err)))
  }

  private scheduleSave(): void {
    if (this.saveTimer) return
    this.saveTimer = true
    void Promise.resolve().then(async () => {
      this.saveTimer = false
      // A failed save is logged by save() and retried by the next; unhandled, it would end the peer.
      await this.save().catch(() => undefined)
    })
  }

  /** Saves run one after the other (the last one wins); a failed save is retried by the next. */
  private save(): Promise<void> {
    this.saved = this.saved
      .catch(() => undefined) // logged below when it failed; this save retries it
      .then(() => {
        this.record.dirty = [...this.dirty]
        return this.client.host.putLocal(`blind:${this.peerId}`, { ...this.record, sv: { ...this.record.sv } })
      })
    this.saved.catch((err: unknown) => log(`cannot save the cursor of the blind store session with ${this.peerId}; the next save retries`, err))
    return this.saved
  }
}
