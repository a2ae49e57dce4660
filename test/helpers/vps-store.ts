import { readdir } from 'node:fs/promises'
import { join } from 'node:path'

/** The blind store's part of `kitsync status --json`: the VPS's store, or a device's sessions with stores. */
export type BlindStoreStatus =
  { role: 'store'; head: number } | { role: 'device'; stores: { peerId: string; live: boolean; cursor: number; pending: boolean }[] }

/**
 * The VPS store's head once the device's session with it is live, has nothing pending and has
 * applied it all (everything uploaded); undefined until then.
 */
export function uploadedHead(mine: BlindStoreStatus | undefined, store: BlindStoreStatus | undefined, vpsId: string): number | undefined {
  if (store?.role !== 'store' || mine?.role !== 'device') return undefined
  const s = mine.stores.find((x) => x.peerId === vpsId)
  return s?.live === true && !s.pending && s.cursor === store.head && store.head > 0 ? store.head : undefined
}

/** Every regular file under `dir`, recursively (absolute paths). */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await filesUnder(p)))
    else if (e.isFile()) out.push(p)
  }
  return out
}
