import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'

/**
 * State vectors as the blind client keeps them per store and collection: what the store holds,
 * learnt from what was uploaded and downloaded. A state vector is varuint count, then
 * (client, clock) varuint pairs (lib0), the layout of Y.encodeStateVector.
 */

export const EMPTY_SV = new Uint8Array([0])

/** What an update holds, per client: the clock after its last struct (skips ignored). */
export function updateClocks(update: Uint8Array): Map<number, number> {
  const out = new Map<number, number>()
  for (const s of Y.decodeUpdate(update).structs) {
    if (s instanceof Y.Skip) continue
    const end = s.id.clock + s.length
    if ((out.get(s.id.client) ?? 0) < end) out.set(s.id.client, end)
  }
  return out
}

export function mergeVector(sv: Uint8Array | undefined, clocks: Map<number, number>): Uint8Array {
  const merged = sv === undefined ? new Map<number, number>() : Y.decodeStateVector(sv)
  for (const [client, clock] of clocks) if ((merged.get(client) ?? 0) < clock) merged.set(client, clock)
  return encodeVector(merged)
}

/** Encode clocks as a state vector, in the map's order (Y.encodeStateVector sorts; this need not). */
export function encodeVector(map: Map<number, number>): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, map.size)
  for (const [client, clock] of map) {
    encoding.writeVarUint(e, client)
    encoding.writeVarUint(e, clock)
  }
  return encoding.toUint8Array(e)
}

/** Does `sv` (what the store has) reach every clock of `docSv`? */
export function covers(sv: Uint8Array | undefined, docSv: Uint8Array): boolean {
  const have = sv === undefined ? new Map<number, number>() : Y.decodeStateVector(sv)
  for (const [client, clock] of Y.decodeStateVector(docSv)) if ((have.get(client) ?? 0) < clock) return false
  return true
}
