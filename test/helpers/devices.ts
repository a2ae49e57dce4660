import { afterAll, afterEach } from 'vitest'
import { openWorkspace, type Workspace } from '../../dist/index.js'
import { cleanup, kitsyncJson, startPeer, stopProc, type RunningPeer } from './cli.js'

/** Network flags that keep a CLI command that runs a peer on loopback, without mDNS. */
export const NET = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']

/**
 * Peers (real `kitsync peer start` processes) and library clients of a test file, stopped
 * and closed after each test. Call once at the top of the file.
 */
export function devicesOfTest(): {
  peer: (home: string, args?: string[]) => Promise<RunningPeer>
  client: (home: string) => Promise<Workspace>
  invite: (home: string, extra?: string[]) => Promise<string>
  forget: (p: RunningPeer | Workspace) => void
  peers: RunningPeer[]
} {
  const open: Workspace[] = []
  const peers: RunningPeer[] = []
  afterEach(async () => {
    for (const ws of open.splice(0)) await ws.close()
    for (const p of peers.splice(0)) await stopProc(p.proc).catch(() => undefined)
  })
  afterAll(cleanup)
  return {
    peers,
    async peer(home, args = []) {
      const p = await startPeer(home, { args })
      peers.push(p)
      return p
    },
    async client(home) {
      const ws = await openWorkspace({ home, mode: 'peer' })
      open.push(ws)
      return ws
    },
    async invite(home, extra = []) {
      return (await kitsyncJson<{ token: string }>(home, ['pair', '--json', ...extra])).token
    },
    /** Stop tracking a peer or client the test stopped or closed itself. */
    forget(p) {
      const list: unknown[] = 'proc' in p ? peers : open
      const i = list.indexOf(p)
      if (i >= 0) list.splice(i, 1)
    },
  }
}
