import { readFile } from 'node:fs/promises'

/**
 * @libp2p/mdns fails silently (ENETUNREACH, no log) when the host has no route for multicast.
 * On Linux, check the routing table for a route that covers 224.0.0.251 (a default route or
 * an explicit multicast route) so `kitsync status` can say that discovery cannot work.
 * Returns undefined where the table cannot be read (other systems): unknown, not "no".
 */
export async function hasMulticastRoute(): Promise<boolean | undefined> {
  let table: string
  try {
    table = await readFile('/proc/net/route', 'utf8')
  } catch {
    return undefined
  }
  const target = 0xe00000fb // 224.0.0.251
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols.length < 8) continue
    const dest = leHex(cols[1] as string)
    const mask = leHex(cols[7] as string)
    const flags = parseInt(cols[3] as string, 16)
    if ((flags & 1) === 0) continue // route not up
    if (((target & mask) >>> 0) === ((dest & mask) >>> 0)) return true
  }
  return false
}

/** /proc/net/route prints addresses as little-endian hex. */
function leHex(hex: string): number {
  const n = parseInt(hex, 16)
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | ((n >>> 24) & 0xff)) >>> 0
}
