import { createServer, type AddressInfo } from 'node:net'
import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { ChangeEvent, Workspace } from '../../dist/index.js'
import { COMMAND_TIMEOUT_MS, kitsyncOk, makeHome, spawnKitsync, stopProc, waitUntil, type Proc, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * Issue 19, item 11: after a remote edit was merged, `watch` (and the library) reported the
 * same change a second time with `source: "local"`: the device settles what the merge brought
 * (it collapses the record's losing slots) in a transaction of its own, and that housekeeping
 * was reported as a local write. Apps drop their own echoes by `source`, so they took a
 * remote edit for one of theirs. Two real peers over TCP on loopback; A's edits are made
 * while it is offline, then it comes back and B merges them.
 */

const SYNC_TIMEOUT = 20_000
const { peer, client, invite, forget } = devicesOfTest()

async function until(ws: Workspace, collection: string, key: string, expected: unknown): Promise<void> {
  await waitUntil(
    async () => (isDeepStrictEqual(await ws.get(collection, key).catch(() => undefined), expected) ? true : undefined),
    SYNC_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)}`,
  )
}

function changesOf(watcher: Proc): ChangeEvent[] {
  return watcher.lines.map((l) => JSON.parse(l) as ChangeEvent)
}

/** Write probes on B until its watcher prints one: from then on it is subscribed. */
async function waitUntilWatching(b: Workspace, watcher: Proc): Promise<void> {
  let seen = false
  const first = watcher
    .waitForLine(() => true, COMMAND_TIMEOUT_MS, 'a first change line')
    .finally(() => {
      seen = true
    })
  for (let i = 0; !seen; i++) {
    await b.set('notes', `probe-${i}`, i)
    await Promise.race([first, new Promise((r) => setTimeout(r, 100))])
  }
  await first
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('a merged remote edit is reported once, as remote', () => {
  it('watch on B shows each of A’s offline edits once with source remote, and no local echo; the same for a live edit', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    // A comes back on the same port, where B dials it again.
    const listenA = ['--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`]
    let pa: RunningPeer = await peer(ha, listenA)
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    await peer(hb)
    let a = await client(ha)
    const b = await client(hb)
    // Records both devices wrote to (one whole write of A, a field of B on top).
    await a.set('notes', 'n1', { x: 1 })
    await a.set('notes', 'n2', { x: 1 })
    await a.set('notes', 'n3', { x: 1 })
    await until(b, 'notes', 'n3', { x: 1 })
    await b.set('notes', 'n1', 1, { field: 'y' })
    await b.set('notes', 'n2', 1, { field: 'y' })
    await until(a, 'notes', 'n2', { x: 1, y: 1 })
    await until(a, 'notes', 'n1', { x: 1, y: 1 })

    // A goes offline and edits; B keeps running, watched, and edits too: the merge finds
    // concurrent writes, which B settles by its policy.
    await a.close()
    forget(a)
    await stopProc(pa.proc)
    forget(pa)
    // B edits the same records first (A's edits are later by clock, so A's values win).
    await b.set('notes', 'n1', 3, { field: 'x' })
    await b.set('notes', 'n2', { x: 3 })
    await kitsyncOk(ha, ['set', 'notes', 'n1', '2', '--field', 'x'])
    await kitsyncOk(ha, ['set', 'notes', 'n2', '{"x":2}'])
    await kitsyncOk(ha, ['del', 'notes', 'n3'])
    await kitsyncOk(ha, ['set', 'notes', 'n4', '{"x":4}'])

    const watcher = spawnKitsync(hb, ['watch', 'notes'])
    await waitUntilWatching(b, watcher)
    const from = watcher.lines.length

    pa = await peer(ha, listenA)
    a = await client(ha)
    await until(b, 'notes', 'n4', { x: 4 })
    // Changes reach the watcher in order: once A's later live write shows, every change the
    // merge caused (and any echo of it) has shown before it.
    await a.set('notes', 'mark1', true)
    await watcher.waitForLine((l) => (JSON.parse(l) as ChangeEvent).key === 'mark1', SYNC_TIMEOUT, 'mark1', from)
    // A live edit while connected, then another marker.
    await a.set('notes', 'n1', 5, { field: 'x' })
    await a.set('notes', 'mark2', true)
    await watcher.waitForLine((l) => (JSON.parse(l) as ChangeEvent).key === 'mark2', SYNC_TIMEOUT, 'mark2', from)

    const seen = changesOf(watcher)
      .slice(from)
      .map((c) => ({ key: c.key, op: c.op, source: c.source, ...(c.op === 'set' ? { value: c.value } : {}) }))
    const merged = seen.slice(0, -3).sort((p, q) => (p.key < q.key ? -1 : 1))
    // The merge of A's offline edits: each once (in the merge's order), remote.
    expect(merged).toEqual([
      { key: 'n1', op: 'set', source: 'remote', value: { x: 2, y: 1 } },
      { key: 'n2', op: 'set', source: 'remote', value: { x: 2 } },
      { key: 'n3', op: 'del', source: 'remote' },
      { key: 'n4', op: 'set', source: 'remote', value: { x: 4 } },
    ])
    expect(seen.slice(-3)).toEqual([
      { key: 'mark1', op: 'set', source: 'remote', value: true },
      { key: 'n1', op: 'set', source: 'remote', value: { x: 5, y: 1 } },
      { key: 'mark2', op: 'set', source: 'remote', value: true },
    ])
    expect(await stopProc(watcher)).toEqual({ code: 0, signal: null })
  })

  it('keep_both: the copy B keeps of its losing version is reported as remote, and nothing as local', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    const listenA = ['--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`]
    let pa: RunningPeer = await peer(ha, listenA)
    await kitsyncOk(ha, ['collection', 'set', 'kb', '--policy', 'keep_both'])
    await kitsyncOk(hb, ['join', await invite(ha), '--name', 'bee', ...NET])
    await peer(hb)
    let a = await client(ha)
    const b = await client(hb)
    await a.set('kb', 'r1', { v: 'first' })
    await until(b, 'kb', 'r1', { v: 'first' })
    expect((await b.collection('kb')).policy).toBe('keep_both')
    await a.close()
    forget(a)
    await stopProc(pa.proc)
    forget(pa)
    await b.set('kb', 'r1', { v: 'b' })
    await kitsyncOk(ha, ['set', 'kb', 'r1', '{"v":"a"}'])

    const watcher = spawnKitsync(hb, ['watch'])
    await waitUntilWatching(b, watcher)
    const from = watcher.lines.length
    pa = await peer(ha, listenA)
    a = await client(ha)
    await until(b, 'kb', 'r1', { v: 'a' })
    await waitUntil(async () => (Object.keys(await b.getAll('kb')).length === 2 ? true : undefined), SYNC_TIMEOUT, 'the kept copy on B')
    await a.set('kb', 'mark', true)
    await watcher.waitForLine((l) => (JSON.parse(l) as ChangeEvent).key === 'mark', SYNC_TIMEOUT, 'mark', from)
    const seen = changesOf(watcher).slice(from)
    const copy = Object.keys(await b.getAll('kb')).find((k) => k.startsWith('r1~conflict-'))
    expect(copy).toBeDefined()
    expect(seen.filter((c) => c.source !== 'remote')).toEqual([])
    expect(seen.some((c) => c.key === copy && c.op === 'set' && isDeepStrictEqual(c.value, { v: 'b' }))).toBe(true)
    expect(seen.filter((c) => c.key === 'r1')).toEqual([expect.objectContaining({ op: 'set', value: { v: 'a' }, source: 'remote' })])
  })
})
