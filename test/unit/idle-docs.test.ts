import { afterEach, describe, expect, it, vi } from 'vitest'
import { IdleDocs } from '../../src/daemon/idle-docs.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { setMemoryRelease } from '../../src/daemon/memory-release.js'
import { SyncEngine } from '../../src/sync/sync-engine.js'
import { cleanup, makeTempDir, waitUntil } from '../helpers/cli.js'
import { MemoryNetwork, prng, type MemoryPeer } from '../helpers/memory-mesh.js'

afterEach(async () => {
  vi.useRealTimers()
  setMemoryRelease(undefined)
  await cleanup()
})

describe('IdleDocs: when an idle collection is dropped', () => {
  it('drops a collection once unused for its idle time, not before; a use postpones it', async () => {
    vi.useFakeTimers()
    const calls: string[] = []
    const idle = new IdleDocs({ idleMs: 100, now: () => Date.now(), unload: async (name, stillIdle) => (calls.push(name), stillIdle() ? 1 : undefined) })
    idle.loaded('a', { clientID: 1 })
    await vi.advanceTimersByTimeAsync(60)
    idle.used('a')
    await vi.advanceTimersByTimeAsync(99)
    expect(calls).toEqual([])
    await vi.advanceTimersByTimeAsync(1)
    expect(calls).toEqual(['a'])
    expect(idle.unloads).toBe(1)
    // Dropped: no longer tracked, a use does not bring it back.
    idle.used('a')
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls).toEqual(['a'])
  })

  it('doubles the idle time of a collection loaded again soon after it was dropped, and tries again one that could not be dropped', async () => {
    vi.useFakeTimers()
    const at: number[] = []
    let refuse = true
    const idle = new IdleDocs({ idleMs: 100, now: () => Date.now(), unload: async () => (at.push(Date.now()), refuse ? undefined : 1) })
    const t0 = Date.now()
    idle.loaded('a', { clientID: 1 })
    await vi.advanceTimersByTimeAsync(100)
    expect(at).toEqual([t0 + 100]) // refused: stays loaded, looked at again an idle time later
    refuse = false
    await vi.advanceTimersByTimeAsync(100)
    expect(at).toEqual([t0 + 100, t0 + 200])
    expect(idle.unloads).toBe(1)
    // Loaded again 50 ms after being dropped (within 10 idle times): kept 200 ms from now on.
    await vi.advanceTimersByTimeAsync(50)
    idle.loaded('a', { clientID: 1 })
    await vi.advanceTimersByTimeAsync(199)
    expect(at).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(1)
    expect(at).toEqual([t0 + 100, t0 + 200, t0 + 450])
  })

  it('never drops anything with an idle time of 0, nor after stop', async () => {
    vi.useFakeTimers()
    const calls: string[] = []
    const off = new IdleDocs({ idleMs: 0, unload: async (name) => (calls.push(name), 1) })
    off.loaded('a', { clientID: 1 })
    const stopped = new IdleDocs({ idleMs: 10, unload: async (name) => (calls.push(name), 1) })
    stopped.loaded('b', { clientID: 1 })
    stopped.stop()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(calls).toEqual([])
  })
})

describe('a workspace drops an idle collection document (real LevelDB)', () => {
  const open = async (home: string, unloadIdleMs: number): Promise<LocalWorkspace> => LocalWorkspace.open({ home, unloadIdleMs })
  const waitUnloaded = (ws: LocalWorkspace, name: string): Promise<true> =>
    waitUntil(async () => (ws.loadedDoc(name) === undefined ? true : undefined), 10_000, `${name} dropped from memory`)

  it('reads from the rows once dropped, loads again for a write or a merged update, and loses nothing', async () => {
    const home = await makeTempDir('ks-idle-')
    const a = await open(home, 30)
    const b = await LocalWorkspace.open({ home: await makeTempDir('ks-idle-b-'), unloadIdleMs: 0 })
    await b.adoptWorkspace(a.workspaceId, 'test')
    const engineA = new SyncEngine(a)
    const engineB = new SyncEngine(b)
    a.onDocLoaded(({ name, doc }) => engineA.track(name, doc))
    b.onDocLoaded(({ name, doc }) => engineB.track(name, doc))
    const net = new MemoryNetwork(prng(7))
    net.connect({ id: 'a', engine: engineA } as unknown as MemoryPeer, { id: 'b', engine: engineB } as unknown as MemoryPeer)
    await net.settle()
    for (let i = 0; i < 200; i++) await a.set('notes', `k${i}`, { n: i })
    await net.settle()
    expect(await b.get('notes', 'k199')).toEqual({ n: 199 })

    const client = a.loadedDoc('notes')?.clientID
    await waitUnloaded(a, 'notes')
    expect(engineA.loadedDoc('notes')).toBeUndefined() // the sync engine let go of it too
    // Reads come from the index rows, without loading it again.
    expect(await a.get('notes', 'k7')).toEqual({ n: 7 })
    expect(Object.keys(await a.getAll('notes'))).toHaveLength(200)
    expect((await a.list()).find((c) => c.name === 'notes')?.records).toBe(200)
    expect(a.loadedDoc('notes')).toBeUndefined()

    // A change from the peer loads it again, is merged, stored and readable.
    await b.set('notes', 'k7', { n: -7 })
    await net.settle()
    await a.flush()
    expect(await a.get('notes', 'k7')).toEqual({ n: -7 })
    // Dropped again, then a local write loads it once more, written as the same Yjs client (the state vector does not grow).
    await waitUnloaded(a, 'notes')
    await a.set('notes', 'k8', { n: -8 })
    expect(a.loadedDoc('notes')?.clientID).toBe(client)
    expect(await a.get('notes', 'k8')).toEqual({ n: -8 })
    await net.settle()
    expect(await b.get('notes', 'k8')).toEqual({ n: -8 })
    await waitUnloaded(a, 'notes')
    expect(await a.get('notes', 'k8')).toEqual({ n: -8 })

    engineA.closeAll()
    engineB.closeAll()
    await a.close()
    await b.close()
    // Everything acknowledged is stored: a fresh open reads every record as written.
    const again = await open(home, 0)
    const all = await again.getAll('notes')
    expect(Object.keys(all)).toHaveLength(200)
    expect(all.k7).toEqual({ n: -7 })
    expect(all.k8).toEqual({ n: -8 })
    expect(all.k199).toEqual({ n: 199 })
    await again.close()
  })

  it('asks the process to collect garbage after dropping a large document only', async () => {
    const ws = await open(await makeTempDir('ks-idle-gc-'), 30)
    const released: number[] = []
    setMemoryRelease(() => released.push(Date.now()))
    await ws.set('small', 'x', { n: 1 })
    await waitUnloaded(ws, 'small')
    expect(released).toHaveLength(0)
    const big = 'x'.repeat(400)
    for (let i = 0; i < 3000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => ws.set('large', `k${i + j}`, { big, n: i + j })))
    }
    await waitUnloaded(ws, 'large')
    await waitUntil(async () => (released.length > 0 ? true : undefined), 10_000, 'a garbage collection asked for')
    expect(released).toHaveLength(1)
    expect(await ws.get('large', 'k2999')).toEqual({ big, n: 2999 })
    await ws.close()
  })
})
