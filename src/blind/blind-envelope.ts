import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { KitsyncError } from '../core/errors.js'

/**
 * The end-to-end encryption of what trusted devices hand to an untrusted store (the VPS):
 *
 *   blob = nonce (12 random bytes) ‖ AES-256-GCM(key, nonce, aad, plaintext) (ciphertext ‖ 16-byte tag)
 *   aad  = UTF-8 "kitsync-blind-v1" NUL workspaceId NUL decimal(epoch) NUL kind   (kind: "entry" | "snapshot")
 *   plaintext = u8 version=2, varuint count, count × (collection: string, update: bytes)   (lib0)
 *
 * Version 2 is version 1's encoding from devices of sync 2, whose updates may hold layout-2
 * records (docs/RECORDS.md): a device of sync 1 refuses it ("unknown version") rather than
 * merge records it cannot read. Version 1 entries (older devices) are still read.
 *
 * key = the workspace key of `epoch` (keys.json; a revocation starts a new epoch). Collection
 * names are inside the ciphertext: the store sees sizes and epochs, nothing else. Uses the
 * WebCrypto global (no node builtins in this layer).
 */
export type EnvelopeKind = 'entry' | 'snapshot'

export interface EnvelopeItem {
  collection: string
  update: Uint8Array
}

const NONCE_BYTES = 12
const PLAINTEXT_VERSION = 2
/** Versions this device reads: 1 holds only layout-1 updates, which it reads as well. */
const READABLE_VERSIONS = new Set([1, PLAINTEXT_VERSION])
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
  encoding.writeUint8(e, PLAINTEXT_VERSION)
  encoding.writeVarUint(e, items.length)
  for (const item of items) {
    encoding.writeVarString(e, item.collection)
    encoding.writeVarUint8Array(e, item.update)
  }
  return encoding.toUint8Array(e)
}

export function decodePlaintext(bytes: Uint8Array): EnvelopeItem[] {
  try {
    const d = decoding.createDecoder(bytes)
    if (!READABLE_VERSIONS.has(decoding.readUint8(d))) throw new Error('unknown version')
    const n = decoding.readVarUint(d)
    const items: EnvelopeItem[] = []
    for (let i = 0; i < n; i++) items.push({ collection: decoding.readVarString(d), update: decoding.readVarUint8Array(d) })
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
