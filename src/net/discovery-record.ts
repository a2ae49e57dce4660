import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'

/**
 * What a peer announces on the LAN, readable by members only. The mDNS instance name is an
 * HMAC of the time window under a key derived from the workspace key, so it changes every
 * window and says nothing to others; the TXT record is the device id and addresses sealed with
 * AES-256-GCM under another derived key. Without the workspace key an announcement is noise:
 * no PeerId, no workspace id.
 */
export const SERVICE = '_kitsync._udp.local'
export const WINDOW_MS = 10 * 60 * 1000

export interface Announcement {
  peerId: string
  addresses: string[]
}

function derive(workspaceKey: Uint8Array, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', workspaceKey, 'kitsync-discovery', purpose, 32))
}

export function instanceName(workspaceKey: Uint8Array, now: number): string {
  const window = Math.floor(now / WINDOW_MS)
  return `${createHmac('sha256', derive(workspaceKey, 'name')).update(String(window)).digest('hex').slice(0, 24)}.${SERVICE}`
}

/** Seal an announcement: [nonce 12][ciphertext][tag 16], with the instance name as associated data. */
export function seal(workspaceKey: Uint8Array, name: string, announcement: Announcement, now: number): Buffer {
  const nonce = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', derive(workspaceKey, 'seal'), nonce)
  cipher.setAAD(Buffer.from(name))
  const body = Buffer.from(JSON.stringify({ p: announcement.peerId, a: announcement.addresses, t: now }))
  return Buffer.concat([nonce, cipher.update(body), cipher.final(), cipher.getAuthTag()])
}

/** Open an announcement with any of the keys; undefined if none fits or it is stale. */
export function open(keys: Uint8Array[], name: string, sealed: Buffer, now: number): Announcement | undefined {
  if (sealed.byteLength < 12 + 16 + 2) return undefined
  for (const key of keys) {
    try {
      const decipher = createDecipheriv('aes-256-gcm', derive(key, 'seal'), sealed.subarray(0, 12))
      decipher.setAAD(Buffer.from(name))
      decipher.setAuthTag(sealed.subarray(sealed.byteLength - 16))
      const body = Buffer.concat([decipher.update(sealed.subarray(12, sealed.byteLength - 16)), decipher.final()])
      const v = JSON.parse(body.toString('utf8')) as { p?: unknown; a?: unknown; t?: unknown }
      if (typeof v.p !== 'string' || !Array.isArray(v.a) || typeof v.t !== 'number') return undefined
      if (Math.abs(now - v.t) > 2 * WINDOW_MS) return undefined
      return { peerId: v.p, addresses: v.a.filter((x): x is string => typeof x === 'string').slice(0, 32) }
    } catch {
      // not this key
    }
  }
  return undefined
}

/** TXT strings are at most 255 bytes: split the sealed record in order. */
export function toTxt(sealed: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < sealed.byteLength; i += 250) out.push(sealed.subarray(i, i + 250))
  return out
}
