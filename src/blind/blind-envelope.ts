import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'

/**
 * The end-to-end encryption of what trusted devices hand to an untrusted store (the VPS):
 *
 *   blob = nonce (12 random bytes) ‖ AES-256-GCM(key, nonce, aad, plaintext) (ciphertext ‖ 16-byte tag)
 *   aad  = UTF-8 "kitsync-blind-v1" NUL workspaceId NUL decimal(epoch) NUL kind   (kind: "entry" | "snapshot")
 *   plaintext = u8 version, varuint count, count × item   (lib0)
 *     version 2 item: collection: string, update: bytes
 *     version 3 item: u8 kind, then kind 0 (a collection's update): collection: string, update: bytes
 *                                   kind 1 (a unit's update): collection: string, unit: string, update: bytes
 *                                   kind 2 (a blob, a binary file's content): hash: string (SHA-256 hex), bytes
 *
 * Version 2 is version 1's encoding from devices of sync 2, whose updates may hold layout-2
 * records (docs/RECORDS.md): a device of sync 1 refuses it ("unknown version") rather than
 * merge records it cannot read. Version 1 entries (older devices) are still read. Version 3
 * carries a shared folder's content too (units and blobs, core/unit-types.ts); it is written
 * only when an entry holds one, so a device that reads up to version 2 refuses only those
 * ("unknown version") and still reads the entries of collections alone.
 *
 * key = the workspace key of `epoch` (keys.json; a revocation starts a new epoch). Collection
 * names, unit ids and blob hashes are inside the ciphertext: the store sees sizes and epochs, nothing else. Uses the
 * WebCrypto global (no node builtins in this layer).
 */
export type EnvelopeKind = 'entry' | 'snapshot'

/** A collection's update (version 1 to 3). */
export interface CollectionItem {
  kind?: undefined
  collection: string
  update: Uint8Array
}

/** A unit's update (version 3): the content of a shared folder's text file. */
export interface UnitItem {
  kind: 'unit'
  collection: string
  unit: string
  update: Uint8Array
}

/** A blob (version 3): the content of a shared folder's binary file, under its SHA-256. */
export interface BlobItem {
  kind: 'blob'
  hash: string
  bytes: Uint8Array
}

export type EnvelopeItem = CollectionItem | UnitItem | BlobItem

const NONCE_BYTES = 12
/** Collections only: the version every device of sync 2 reads. */
const COLLECTIONS_VERSION = 2
/** With units or blobs. */
const CONTENT_VERSION = 3
const KIND = { collection: 0, unit: 1, blob: 2 } as const
const encoder = new TextEncoder()

type Subtle = typeof globalThis.crypto.subtle
type Key = Awaited<ReturnType<Subtle['importKey']>>

function subtle(): Subtle {
  const c = globalThis.crypto
  if (c?.subtle === undefined) throw new KitsyncError('INTERNAL', 'WebCrypto (globalThis.crypto.subtle) is not available')
  return c.subtle
}

function aad(workspaceId: string, epoch: number, kind: EnvelopeKind): Uint8Array {
  return encoder.encode(['kitsync-blind-v1', workspaceId, String(epoch), kind].join('\u0000'))
}

/** Imported keys by their bytes (a key ring holds few: one per epoch). */
const imported = new Map<string, Promise<Key>>()

function importKey(raw: Uint8Array): Promise<Key> {
  if (raw.byteLength !== 32) throw new KitsyncError('INTERNAL', 'a workspace key must be 32 bytes')
  const id = raw.join(',')
  let key = imported.get(id)
  if (key === undefined) {
    if (imported.size > 64) imported.clear()
    key = subtle().importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt'])
    imported.set(id, key)
  }
  return key
}

export function encodePlaintext(items: EnvelopeItem[]): Uint8Array {
  const e = encoding.createEncoder()
  const v3 = items.some((item) => item.kind !== undefined)
  encoding.writeUint8(e, v3 ? CONTENT_VERSION : COLLECTIONS_VERSION)
  encoding.writeVarUint(e, items.length)
  for (const item of items) {
    if (item.kind === 'blob') {
      encoding.writeUint8(e, KIND.blob)
      encoding.writeVarString(e, item.hash)
      encoding.writeVarUint8Array(e, item.bytes)
      continue
    }
    if (v3) encoding.writeUint8(e, item.kind === 'unit' ? KIND.unit : KIND.collection)
    encoding.writeVarString(e, item.collection)
    if (item.kind === 'unit') encoding.writeVarString(e, item.unit)
    encoding.writeVarUint8Array(e, item.update)
  }
  return encoding.toUint8Array(e)
}

function readItem(d: decoding.Decoder, version: number): EnvelopeItem {
  const kind = version === CONTENT_VERSION ? decoding.readUint8(d) : KIND.collection
  switch (kind) {
    case KIND.collection:
      return { collection: decoding.readVarString(d), update: decoding.readVarUint8Array(d) }
    case KIND.unit:
      return { kind: 'unit', collection: decoding.readVarString(d), unit: decoding.readVarString(d), update: decoding.readVarUint8Array(d) }
    case KIND.blob:
      return { kind: 'blob', hash: decoding.readVarString(d), bytes: decoding.readVarUint8Array(d) }
    default:
      throw new Error(`unknown item kind ${kind}`)
  }
}

export function decodePlaintext(bytes: Uint8Array): EnvelopeItem[] {
  try {
    const d = decoding.createDecoder(bytes)
    const version = decoding.readUint8(d)
    // 1 holds only layout-1 updates, which this device reads as well.
    if (version !== 1 && version !== COLLECTIONS_VERSION && version !== CONTENT_VERSION) throw new Error('unknown version')
    const n = decoding.readVarUint(d)
    const items: EnvelopeItem[] = []
    for (let i = 0; i < n; i++) items.push(readItem(d, version))
    if (decoding.hasContent(d)) throw new Error('trailing bytes')
    return items
  } catch (err) {
    throw new KitsyncError('PROTOCOL_ERROR', `a decrypted blind entry does not decode: ${(err as Error).message}`, { cause: err })
  }
}

export async function seal(key: Uint8Array, ctx: { workspaceId: string; epoch: number; kind: EnvelopeKind }, items: EnvelopeItem[]): Promise<Uint8Array> {
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES))
  const sealed = new Uint8Array(
    await subtle().encrypt(
      { name: 'AES-GCM', iv: nonce, additionalData: aad(ctx.workspaceId, ctx.epoch, ctx.kind) },
      await importKey(key),
      encodePlaintext(items),
    ),
  )
  const out = new Uint8Array(NONCE_BYTES + sealed.byteLength)
  out.set(nonce)
  out.set(sealed, NONCE_BYTES)
  return out
}

/** Decrypt and decode; DATA_CORRUPTION if the blob was not sealed with this key and context. */
export async function open(key: Uint8Array, ctx: { workspaceId: string; epoch: number; kind: EnvelopeKind }, blob: Uint8Array): Promise<EnvelopeItem[]> {
  if (blob.byteLength < NONCE_BYTES + 16) throw new KitsyncError('DATA_CORRUPTION', 'blind entry too short')
  let plain: ArrayBuffer
  try {
    plain = await subtle().decrypt(
      { name: 'AES-GCM', iv: blob.subarray(0, NONCE_BYTES), additionalData: aad(ctx.workspaceId, ctx.epoch, ctx.kind) },
      await importKey(key),
      blob.subarray(NONCE_BYTES),
    )
  } catch (err) {
    throw new KitsyncError('DATA_CORRUPTION', `blind entry of epoch ${ctx.epoch} does not decrypt (wrong key, workspace or damaged)`, { cause: err })
  }
  return decodePlaintext(new Uint8Array(plain))
}
