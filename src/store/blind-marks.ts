import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { UnitMark } from '../blind/client-types.js'
import { KitsyncError } from '../core/errors.js'
import type { BatchOp } from './doc-layout.js'
import type { DocStore } from './doc-store.js'
import { frame, unframe } from './framing.js'

/**
 * What each blind store (a VPS) holds of this device's shared folders' content, as far as the
 * device knows (blind/blind-units.ts), among its device-local values:
 *   l!bu!<store>!<collection>!<unit>   [digest varint][state vector varbytes]
 *   l!bb!<store>!<hash>                (empty): the store holds this blob
 * One row per unit and blob, framed with a CRC like the rest of the store: an acknowledged upload
 * writes the rows of what it carried, not a map of all 10,000 units (store peer ids and
 * collection names hold no '!').
 */
const unitPrefix = (store: string, collection: string): string => `l!bu!${store}!${collection}!`
const blobPrefix = (store: string): string => `l!bb!${store}!`
/** Every key starting with `prefix` (which ends with '!', and '"' follows it). */
const range = (prefix: string): { gt: string; lt: string } => ({ gt: prefix, lt: `${prefix.slice(0, -1)}"` })

export class LevelBlindMarks {
  constructor(private readonly store: Pick<DocStore, 'db' | 'batch'>) {}

  async load(storePeer: string, collection: string): Promise<Map<string, UnitMark>> {
    const prefix = unitPrefix(storePeer, collection)
    const out = new Map<string, UnitMark>()
    for await (const [key, raw] of this.store.db.iterator(range(prefix))) {
      const payload = unframe(raw)
      // A damaged row is a mark lost: the unit goes up again (nothing is lost on the store).
      if (payload === undefined) continue
      try {
        const d = decoding.createDecoder(payload)
        out.set(key.slice(prefix.length), { digest: decoding.readVarInt(d), sv: decoding.readVarUint8Array(d) })
      } catch {
        continue
      }
    }
    return out
  }

  async save(storePeer: string, collection: string, marks: Iterable<[string, UnitMark]>): Promise<void> {
    const prefix = unitPrefix(storePeer, collection)
    const ops: BatchOp[] = []
    for (const [unit, mark] of marks) {
      const e = encoding.createEncoder()
      encoding.writeVarInt(e, mark.digest)
      encoding.writeVarUint8Array(e, mark.sv)
      ops.push({ type: 'put', key: prefix + unit, value: frame(encoding.toUint8Array(e)) })
    }
    if (ops.length > 0) await this.store.batch(ops)
  }

  async loadBlobs(storePeer: string): Promise<Set<string>> {
    const prefix = blobPrefix(storePeer)
    const out = new Set<string>()
    for await (const key of this.store.db.keys(range(prefix))) out.add(key.slice(prefix.length))
    return out
  }

  async saveBlobs(storePeer: string, hashes: Iterable<string>): Promise<void> {
    const ops: BatchOp[] = []
    for (const h of hashes) ops.push({ type: 'put', key: blobPrefix(storePeer) + h, value: frame(new Uint8Array(0)) })
    if (ops.length > 0) await this.store.batch(ops)
  }

  async clear(storePeer: string): Promise<void> {
    try {
      await this.store.db.clear(range(`l!bu!${storePeer}!`))
      await this.store.db.clear(range(blobPrefix(storePeer)))
    } catch (err) {
      throw new KitsyncError('STORAGE_FAILED', `cannot forget what the blind store ${storePeer} held`, { cause: err })
    }
  }
}
