import type { Command } from 'commander'
import { readFileSync } from 'node:fs'
import { lstat, readdir, stat } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'
import { KitsyncError } from '../../core/errors.js'
import type { WorkspaceStatus } from '../../core/workspace-types.js'
import { ControlClient } from '../../api/control-client.js'
import { runDoctor, type DoctorCheck, type DoctorProbes, type FileInfo } from '../../daemon/doctor.js'
import { DEFAULT_LISTEN } from '../../net/libp2p-node.js'
import { multicastUnavailable } from '../../net/multicast-route.js'
import { homePaths, readWorkspaceConfig, resolveHome, type HomePaths } from '../../store/home.js'
import { openHomeStore } from '../../store/level.js'
import { example, globals, type CliIO } from '../context.js'
import { deviceLabel } from '../device-label.js'

/** How long a bootstrap address gets to accept a TCP connection. */
const CONNECT_TIMEOUT_MS = 3_000

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('doctor')
      .description('check this host and home folder: multicast, ports, bootstrap addresses, clocks, the store, permissions, Node')
      .option('--listen <multiaddr>', 'listen address to check when no peer runs, repeatable (default /ip4/0.0.0.0/tcp/4771)', collect),
    'kitsync doctor',
    'kitsync doctor --json',
  ).action(async (options: { listen?: string[] }, cmd: Command) => {
    const opts = globals(cmd)
    const home = resolveHome(opts.home, io.env)
    const paths = homePaths(home)
    // A damaged workspace.json is the workspace check's to report, not a reason to stop here.
    let workspace: DoctorProbes['workspace']
    let bootstrap: string[] = []
    try {
      const config = await readWorkspaceConfig(paths)
      workspace = config === undefined ? { missing: true } : { name: config.name }
      bootstrap = config?.bootstrap ?? []
    } catch (err) {
      workspace = { error: `${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error).message}` }
    }
    const checks = await runDoctor(realProbes(paths, options.listen ?? DEFAULT_LISTEN, workspace, bootstrap))
    if (opts.json === true) io.out(JSON.stringify({ checks }) + '\n')
    else io.out(checks.map(formatCheck).join('\n') + '\n')
    const failed = checks.filter((c) => !c.ok)
    if (failed.length > 0) {
      throw new KitsyncError('CHECK_FAILED', `${failed.length} of ${checks.length} checks failed: ${failed.map((c) => c.name).join(', ')}`)
    }
  })
}

function formatCheck(c: DoctorCheck): string {
  return `${c.ok ? (c.skipped === true ? 'skip' : 'ok  ') : 'FAIL'}  ${c.name}: ${c.message}`
}

function realProbes(paths: HomePaths, listen: string[], workspace: DoctorProbes['workspace'], bootstrap: string[]): DoctorProbes {
  return {
    home: paths.home,
    multicastUnavailable,
    runningPeer: async () => {
      const client = await ControlClient.connect(paths.socket)
      if (client === undefined) return undefined
      try {
        const status = (await client.request('status')) as WorkspaceStatus
        const network = status.network
        const names = Object.fromEntries((network?.devices ?? []).map((d) => [d.peerId, d.name]))
        const clockOffsets = network?.clocks?.map((c) => ({ device: deviceLabel(c.device, names), offsetMs: c.offsetMs, rttMs: c.rttMs }))
        return {
          pid: status.peer.pid ?? client.peer?.pid,
          listen: network?.listen ?? [],
          connected: network?.connected ?? 0,
          ...(network === undefined ? {} : { mdns: network.discovery.mdns }),
          ...(network?.relays === undefined
            ? {}
            : {
                relays: network.relays.map((id) => ({
                  device: deviceLabel(id, names),
                  reserved: network.listen.some((a) => a.includes(`/p2p/${id}/p2p-circuit`)),
                })),
              }),
          ...(clockOffsets === undefined ? {} : { clockOffsets }),
        }
      } finally {
        client.close()
      }
    },
    listen,
    bindFree,
    workspace,
    bootstrap,
    tcpConnect,
    homeFiles: () => homeFiles(paths.home),
    uid: process.getuid?.(),
    storeExists: async () => (await exists(paths.store)) || (await exists(paths.storeMarker)),
    openStore: async () => {
      const db = await openHomeStore(paths)
      await db.close()
    },
    sizes: async () => ({ store: await folderBytes(paths.store), snapshots: await folderBytes(paths.snapshots) }),
    damagedWalFiles: async () => (await readdir(paths.home).catch(() => [] as string[])).filter((n) => n.startsWith('store.wal.damaged-')).sort(),
    nodeVersion: process.versions.node,
    engines: packageEngines(),
  }
}

function packageEngines(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { engines?: { node?: string } }
  return pkg.engines?.node ?? '*'
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

function bindFree(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' ? 'in use' : (err.code ?? err.message)))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)))
  })
}

function tcpConnect(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port })
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)
    }, CONNECT_TIMEOUT_MS)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(undefined)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resolve(err.code === 'ECONNREFUSED' ? 'connection refused: nothing listens there' : (err.code ?? err.message))
    })
  })
}

async function homeFiles(home: string): Promise<{ home: FileInfo; files: FileInfo[] } | undefined> {
  let st
  try {
    st = await stat(home)
  } catch {
    return undefined
  }
  const files: FileInfo[] = []
  for (const name of await readdir(home)) {
    const path = join(home, name)
    const f = await lstat(path).catch(() => undefined) // removed meanwhile (peer.pid at exit): nothing to check
    if (f === undefined || f.isSocket() || f.isSymbolicLink()) continue
    files.push({ path, mode: f.mode, uid: f.uid, isDirectory: f.isDirectory() })
  }
  return { home: { path: home, mode: st.mode, uid: st.uid, isDirectory: true }, files }
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await folderBytes(path)
    else if (entry.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size
  }
  return total
}
