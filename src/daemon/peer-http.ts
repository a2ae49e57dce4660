import { debugLog } from '../core/debug-log.js'
import { KitsyncError } from '../core/errors.js'
import { KITSYNC_VERSION } from '../core/version.js'
import { DEFAULT_HTTP_PORT } from '../protocol/http-api.js'
import { httpFiles, loadOrCreateHttpToken, removeHttpInfo, writeHttpInfo, type HttpFiles } from '../store/http-files.js'
import type { HomePaths, HttpSetting } from '../store/home.js'
import type { NetworkStatus } from '../core/workspace-types.js'
import type { LocalWorkspace } from './local-workspace.js'
import { DashboardSessions } from './dashboard-login.js'
import { DashboardRoutes } from './dashboard-routes.js'
import { ApiRoutes, type ControlDispatch } from './http-routes.js'
import { HttpServer } from './http-server.js'
import { PeerMetrics, type MetricsSource } from './metrics.js'

const log = debugLog('daemon:http')

/** `peer start --http-port N` (`{port}`), the default (`{}`), or `--no-http` (false). */
export type HttpOption = { port?: number } | false

/**
 * Which port the peer serves HTTP on: the flag, else workspace.json's `http.port`, else
 * DEFAULT_HTTP_PORT (taken: one the OS chooses). Off with `--no-http`, or with
 * `"http": {"enabled": false}` in workspace.json unless a port is given on the command line.
 */
export function httpPortFor(option: HttpOption | undefined, setting: HttpSetting | undefined): { port: number; fallback: boolean } | undefined {
  if (option === undefined || option === false) return undefined
  if (option.port !== undefined) return { port: option.port, fallback: false }
  if (setting?.enabled === false) return undefined
  if (setting?.port !== undefined) {
    if (!Number.isSafeInteger(setting.port) || setting.port < 0 || setting.port > 65535)
      throw new KitsyncError('INVALID_ARGUMENT', `workspace.json: http.port must be a port number (0-65535), not ${JSON.stringify(setting.port)}`)
    return { port: setting.port, fallback: false }
  }
  return { port: DEFAULT_HTTP_PORT, fallback: true }
}

/** What /metrics reads from the running peer (daemon/peer.ts). */
export function metricsSourceOf(peer: {
  deviceId: string
  paths: HomePaths
  workspace: Pick<LocalWorkspace, 'stats' | 'list' | 'on' | 'storageStats' | 'sync'>
  networkStatus(): Promise<NetworkStatus>
}): Omit<MetricsSource, 'version'> {
  return {
    deviceId: peer.deviceId,
    stats: () => peer.workspace.stats(),
    syncStatus: () => peer.workspace.sync.status(),
    list: () => peer.workspace.list(),
    storageStats: (collection) => peer.workspace.storageStats(collection),
    network: () => peer.networkStatus(),
    storeParts: { leveldb: peer.paths.store, snapshots: peer.paths.snapshots, wal: peer.paths.wal },
    onSyncOffline: (listener) => peer.workspace.on('sync:offline', listener),
  }
}

/**
 * The running peer's HTTP server with everything around it: the token (HOME/http.token, made
 * at the first start), the routes and metrics, the web dashboard and its browser sessions, and
 * HOME/http.json telling clients the port (removed at the stop).
 */
export class PeerHttp {
  private constructor(
    private readonly server: HttpServer,
    private readonly routes: ApiRoutes,
    private readonly metrics: PeerMetrics,
    private readonly files: HttpFiles,
  ) {}

  static async start(init: {
    home: string
    port: number
    fallback: boolean
    control: ControlDispatch
    source: Omit<MetricsSource, 'version'>
  }): Promise<PeerHttp> {
    const files = httpFiles(init.home)
    const token = await loadOrCreateHttpToken(files)
    const metrics = new PeerMetrics({ ...init.source, version: KITSYNC_VERSION })
    const routes = new ApiRoutes(init.control, metrics, KITSYNC_VERSION)
    let server: HttpServer
    try {
      const dashboard = new DashboardRoutes()
      server = await HttpServer.listen({
        port: init.port,
        fallback: init.fallback,
        token,
        routes: { find: (path) => routes.find(path) ?? dashboard.find(path) },
        sessions: new DashboardSessions(token, process.pid),
      })
    } catch (err) {
      metrics.close()
      throw err
    }
    const http = new PeerHttp(server, routes, metrics, files)
    try {
      await writeHttpInfo(files, { url: server.url, port: server.port, pid: process.pid })
    } catch (err) {
      await http.close()
      throw err
    }
    return http
  }

  get url(): string {
    return this.server.url
  }

  get port(): number {
    return this.server.port
  }

  async close(): Promise<void> {
    this.routes.close()
    await this.server.close()
    this.metrics.close()
    await removeHttpInfo(this.files).catch((err: unknown) => log('cannot remove http.json; clients see its pid is gone', err))
  }
}
