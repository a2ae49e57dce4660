import { randomBytes } from 'node:crypto'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'
import type { BlindEntry, BlindSnapshot, BlindStorage, BlindStoreState } from '../blind/blind-storage.js'
import type { BinaryLevel } from './level.js'
import { frame, unframe } from './framing.js'

/**
 * The untrusted peer's blind store in its LevelDB (next to its own small workspace), keys:
 *   b!meta          JSON BlindStoreState
 *   b!e!<seq hex16> [epoch varuint][ciphertext]
 *   b!snap          [covers varuint][epoch varuint][ciphertext]
 * every value framed with a CRC like the rest of the store. An append or a snapshot that
 * replaces entries is one atomic batch. Nothing here can be read without the workspace keys,
 * which this peer never has.
 *
 * It implements the blind server's storage port (src/blind/blind-storage.ts). The port belongs
 * to the layer that uses it, the adapter to the only layer that may touch LevelDB: that is why
 * store/ sits above blind/ (the server never imports this file; the daemon hands it over).
 */
const META = 'b!meta'
const SNAP = 'b!snap'
const entryKey = (seq: number): string => `b!e!${seq.toString(16).padStart(16, '0')}`
const ENTRY_RANGE = { gt: 'b!e!', lt: 'b!e"' }
const text = new TextEncoder()

function encodeValue(head: number[], ciphertext: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  for (const n of head) encoding.writeVarUint(e, n)
  encoding.writeUint8Array(e, ciphertext)
  return frame(encoding.toUint8Array(e))
}

function decodeValue(key: string, raw: Uint8Array, fields: number): { head: number[]; ciphertext: Uint8Array } {
  const payload = unframe(raw)
  if (payload === undefined) throw new KitsyncError('DATA_CORRUPTION', `blind store value ${key} is damaged`)
  const d = decoding.createDecoder(payload)
  const head: number[] = []
  for (let i = 0; i < fields; i++) head.push(decoding.readVarUint(d))
  return { head, ciphertext: payload.subarray(d.pos) }
}

export class LevelBlindStorage implements BlindStorage {
  private constructor(
    private readonly db: BinaryLevel,
    private s: BlindStoreState,
  ) {}

  static async open(db: BinaryLevel): Promise<LevelBlindStorage> {
    const raw = await db.get(META)
    if (raw === undefined) {
      const s: BlindStoreState = { storeId: randomBytes(12).toString('hex'), head: 0, snapshotSeq: 0, sinceCount: 0, sinceBytes: 0 }
      await db.put(META, frame(text.encode(JSON.stringify(s))))
      return new LevelBlindStorage(db, s)
    }
    const payload = unframe(raw)
    if (payload === undefined) throw new KitsyncError('DATA_CORRUPTION', 'blind store metadata is damaged')
    return new LevelBlindStorage(db, JSON.parse(new TextDecoder().decode(payload)) as BlindStoreState)
  }

  state(): BlindStoreState {
    return { ...this.s }
  }

  async append(epoch: number, ciphertext: Uint8Array): Promise<number> {
    const next: BlindStoreState = { ...this.s, head: this.s.head + 1, sinceCount: this.s.sinceCount + 1, sinceBytes: this.s.sinceBytes + ciphertext.byteLength }
    await this.db.batch([
      { type: 'put', key: entryKey(next.head), value: encodeValue([epoch], ciphertext) },
      { type: 'put', key: META, value: frame(text.encode(JSON.stringify(next))) },
    ])
    this.s = next
    return next.head
  }

  async snapshot(): Promise<BlindSnapshot | undefined> {
    const raw = await this.db.get(SNAP)
    if (raw === undefined) return undefined
    const { head, ciphertext } = decodeValue(SNAP, raw, 2)
    return { covers: head[0] as number, epoch: head[1] as number, ciphertext }
  }

  async *entriesAfter(after: number): AsyncIterable<BlindEntry> {
    for await (const [key, value] of this.db.iterator({ gt: entryKey(after), lt: ENTRY_RANGE.lt })) {
      const { head, ciphertext } = decodeValue(key, value, 1)
      yield { seq: parseInt(key.slice(4), 16), epoch: head[0] as number, ciphertext }
    }
  }

  async replaceWithSnapshot(snapshot: BlindSnapshot): Promise<void> {
    const ops: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = [
      { type: 'put', key: SNAP, value: encodeValue([snapshot.covers, snapshot.epoch], snapshot.ciphertext) },
    ]
    let count = 0
    let bytes = 0
    for await (const [key, value] of this.db.iterator({ ...ENTRY_RANGE })) {
      const seq = parseInt(key.slice(4), 16)
      if (seq <= snapshot.covers) ops.push({ type: 'del', key })
      else {
        count++
        bytes += value.byteLength
      }
    }
    const next: BlindStoreState = { ...this.s, snapshotSeq: snapshot.covers, sinceCount: count, sinceBytes: bytes }
    ops.push({ type: 'put', key: META, value: frame(text.encode(JSON.stringify(next))) })
    await this.db.batch(ops)
    this.s = next
  }
}
