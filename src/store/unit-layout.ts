/**
 * Keys of units (named sub-documents of a collection, core/unit-types.ts) and blobs, beside the
 * collection keys of doc-layout.ts. Their prefix letters are their own, so no scan of a
 * collection's keys (`u!NAME!`, `r!NAME!`, `m!`, the blind store's `b!`) ever reads them:
 *   y!<name>!<unit>             the unit's snapshot: one Yjs update (framed). Written with the
 *                               unit's first update (empty then), so a scan of `y!<name>!` lists
 *                               every stored unit without reading the logs.
 *   w!<name>!<unit>!<seq:16hex> one Yjs update of the unit written after its snapshot
 *   o!<sha256 hex>              a blob, its bytes framed (CRC), checked against the hash when read
 * Collection names never contain '!', and unit ids are base64url (no '!'), so the ranges below
 * hold only their own keys ('"' follows '!').
 */
const SEQ_WIDTH = 16

/** A unit id: base64url, as a fileId is (22 characters), up to 64. */
export const UNIT_ID = /^[A-Za-z0-9_-]{1,64}$/
/** A blob's hash: SHA-256, lowercase hex. */
export const BLOB_HASH = /^[0-9a-f]{64}$/

export const unitSnapshotKey = (name: string, unit: string): string => `y!${name}!${unit}`
export const unitUpdateKey = (name: string, unit: string, seq: number): string => `w!${name}!${unit}!${seq.toString(16).padStart(SEQ_WIDTH, '0')}`
/** The log entries of one unit, in sequence order. */
export const unitUpdateRange = (name: string, unit: string): { gte: string; lt: string } => ({ gte: `w!${name}!${unit}!`, lt: `w!${name}!${unit}"` })
/** The snapshots of every unit of a collection (one key per stored unit). */
export const unitSnapshotRange = (name: string): { gte: string; lt: string } => ({ gte: `y!${name}!`, lt: `y!${name}"` })
/** Every log entry of every unit of a collection. */
export const unitLogRange = (name: string): { gte: string; lt: string } => ({ gte: `w!${name}!`, lt: `w!${name}"` })
/** The unit id of a key of unitSnapshotRange(name). */
export const unitOfSnapshotKey = (name: string, key: string): string => key.slice(`y!${name}!`.length)
/** The unit id of a key of unitLogRange(name). */
export const unitOfLogKey = (name: string, key: string): string => key.slice(`w!${name}!`.length, key.lastIndexOf('!'))
/** The sequence number of a key of unitUpdateRange(name, unit). */
export const unitSeqOf = (name: string, unit: string, key: string): number => parseInt(key.slice(`w!${name}!${unit}!`.length), 16)
export const blobKey = (hash: string): string => `o!${hash}`
/** Every blob. */
export const BLOB_RANGE = { gte: 'o!', lt: 'o"' } as const
