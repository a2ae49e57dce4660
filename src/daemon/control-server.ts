import { chmod, rm } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError, toKitsyncError } from '../core/errors.js'
import { historyParams, historySettingOf } from '../core/history-types.js'
import type { JsonValue } from '../core/json.js'
import { KITSYNC_VERSION } from '../core/version.js'
import { checkControlSocket } from '../store/home.js'
import type { FolderService } from './folder-service.js'
import { folderAddParams, folderSelectionParams } from './folder-params.js'
import { WORKSPACE_EVENTS, type CollectionChange, type NetworkStatus, type ResolveChoice, type Workspace } from '../core/workspace-types.js'
import type { Invite } from './invites.js'
import { toImportSource } from '../core/import-plan.js'
import type { PatternChange } from '../core/selection.js'
import {
  CONTROL_PROTOCOL,
  encodeMessage,
  LineSplitter,
  parseRequest,
  type ControlRequest,
  type ControlResponse,
  type HelloResult,
} from '../protocol/control.js'

const log = debugLog('daemon:control')

/**
 * Serves a workspace over the control socket. Each connection must say `hello` first; after
 * that it may call any workspace method, and `watch` streams change events to it.
 */
/** What the running peer adds to the control API (absent when only the store is served). */
export interface PeerControl {
  createInvite(ttlMs?: number, options?: { confirm?: boolean; untrusted?: boolean }): Promise<Invite>
  readonly invites: { approve(tokenId: string, accept: boolean): boolean }
  join(token: string, name: string, options?: { waitMs?: number }): Promise<unknown>
  networkStatus(): Promise<NetworkStatus>
}

export class ControlServer {
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private peer: PeerControl | undefined
  private folders: Pick<FolderService, 'add' | 'list' | 'status' | 'remove' | 'history' | 'restore' | 'setHistory' | 'setSelection'> | undefined

  private constructor(
    private readonly workspace: Workspace,
    readonly path: string,
  ) {
    this.server = createServer((socket) => this.accept(socket))
  }

  /**
   * Listen on `path`. The caller must already own the store: that is what makes a socket
   * file left behind by a killed peer safe to remove here.
   */
  static async listen(workspace: Workspace, path: string): Promise<ControlServer> {
    const server = new ControlServer(workspace, path)
    // Another user's socket (or folder) is neither served nor removed: PERMISSION_DENIED.
    if (process.platform !== 'win32' && (await checkControlSocket(path, { create: true }))) {
      if (await socketAnswers(path)) {
        throw new KitsyncError('PEER_ALREADY_RUNNING', `another process serves the control socket ${path}`)
      }
      await rm(path, { force: true })
    }
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject)
      // Listen with a private umask-independent mode: chmod right after, before anyone is told.
      server.server.listen(path, () => {
        server.server.off('error', reject)
        resolve()
      })
    })
    if (process.platform !== 'win32') await chmod(path, 0o600)
    return server
  }

  /** Serve the peer's methods (pair, join, peers) too. */
  setPeer(peer: PeerControl): void {
    this.peer = peer
  }

  /** Serve the shared folders' methods (folderAdd, folderList, folderStatus, folderRemove, folderHistory, folderRestore, folderSet). */
  setFolders(folders: Pick<FolderService, 'add' | 'list' | 'status' | 'remove' | 'history' | 'restore' | 'setHistory' | 'setSelection'>): void {
    this.folders = folders
  }

  private requireFolders(): Pick<FolderService, 'add' | 'list' | 'status' | 'remove' | 'history' | 'restore' | 'setHistory' | 'setSelection'> {
    if (this.folders === undefined) throw new KitsyncError('PEER_NOT_RUNNING', 'shared folders run in the peer: start it with kitsync peer start')
    return this.folders
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    if (process.platform !== 'win32') await rm(this.path, { force: true })
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    const splitter = new LineSplitter()
    let greeted = false
    const watches = new Map<number, AbortController>()
    const send = (message: ControlResponse | { event: string; data: unknown }): void => {
      if (!socket.destroyed) socket.write(encodeMessage(message))
    }
    // Requests of one connection are answered in order.
    let queue = Promise.resolve()
    socket.on('data', (chunk: Buffer) => {
      let lines: string[]
      try {
        lines = splitter.push(chunk)
      } catch (err) {
        send({ id: 0, error: toKitsyncError(err).toJSON() })
        socket.destroy()
        return
      }
      for (const line of lines) {
        if (line.trim() === '') continue
        queue = queue.then(async () => {
          let request: ControlRequest
          try {
            request = parseRequest(line)
          } catch (err) {
            const e = toKitsyncError(err)
            send({ id: typeof e.details.id === 'number' ? e.details.id : 0, error: e.toJSON() })
            return
          }
          if (!greeted && request.method !== 'hello') {
            send({ id: request.id, error: new KitsyncError('CONTROL_PROTOCOL', 'say hello first').toJSON() })
            return
          }
          try {
            if (request.method === 'hello') {
              send({ id: request.id, result: this.hello(request.params ?? {}) })
              greeted = true
            } else if (request.method === 'watch') {
              const stop = new AbortController()
              watches.set(request.id, stop)
              this.watch(
                request.id,
                request.params,
                stop.signal,
                (event, data) => send({ event, data }),
                (err) => {
                  // The client sees its socket close: it watches again, or reports it.
                  log(`watch ${request.id} ended with an error; its connection is closed`, err)
                  socket.destroy()
                },
              )
              send({ id: request.id, result: { watching: request.id } })
            } else if (request.method === 'unwatch') {
              const id = request.params?.watch
              if (typeof id === 'number') watches.get(id)?.abort()
              send({ id: request.id, result: true })
            } else {
              send({ id: request.id, result: await this.call(request) })
            }
          } catch (err) {
            send({ id: request.id, error: toKitsyncError(err).toJSON() })
          }
        })
      }
    })
    const cleanup = (): void => {
      this.sockets.delete(socket)
      for (const stop of watches.values()) stop.abort()
    }
    socket.on('close', cleanup)
    socket.on('error', () => socket.destroy())
  }

  /**
   * Stream the changes (with `sync: true` the sync events too) of watch `id` to `send` until
   * `signal` aborts; `failed` when the stream breaks. The socket and the HTTP API's event stream
   * (daemon/http-routes.ts) both watch through here, so their events are the same.
   */
  watch(
    id: number,
    params: Record<string, unknown> | undefined,
    signal: AbortSignal,
    send: (event: string, data: object) => void,
    failed: (err: unknown) => void,
  ): void {
    const collection = optionalString(params, 'collection')
    // `changes: false`: the sync events only (a join's progress bar needs no record changes).
    if (params?.changes !== false) {
      const iterable = this.workspace.changes({ signal, ...(collection === undefined ? {} : { collection }) })
      void (async () => {
        for await (const change of iterable) send('change', { watch: id, ...change })
      })().catch(failed)
    }
    if (params?.sync === true) {
      const offs = WORKSPACE_EVENTS.filter((e) => e !== 'change').map((event) => this.workspace.on(event, (data) => send(event, { watch: id, ...data })))
      signal.addEventListener('abort', () => offs.forEach((off) => off()))
    }
  }

  /** `hello`: also answered over HTTP (daemon/http-routes.ts), where it is optional. */
  hello(params: Record<string, unknown>): HelloResult {
    if (params.protocol !== CONTROL_PROTOCOL) {
      throw new KitsyncError('VERSION_MISMATCH', `the peer speaks control protocol ${CONTROL_PROTOCOL}, the client ${String(params.protocol)}`)
    }
    if (params.version !== undefined && params.version !== KITSYNC_VERSION) {
      throw new KitsyncError(
        'VERSION_MISMATCH',
        `the running peer is kitsync ${KITSYNC_VERSION} and this client is ${String(params.version)}: restart the peer with the same version`,
      )
    }
    return { protocol: CONTROL_PROTOCOL, version: KITSYNC_VERSION, pid: process.pid }
  }

  private requirePeer(): PeerControl {
    if (this.peer === undefined) throw new KitsyncError('PEER_NOT_RUNNING', 'this process serves the store only; start the peer with kitsync peer start')
    return this.peer
  }

  /** Every method but hello, watch and unwatch: the one dispatch of the socket and the HTTP API. */
  async call(request: ControlRequest): Promise<unknown> {
    const p = request.params ?? {}
    const ws = this.workspace
    switch (request.method) {
      case 'info':
        return ws.info()
      case 'get': {
        const value = await ws.get(requireString(p, 'collection'), requireString(p, 'key'))
        return value === undefined ? { found: false } : { found: true, value }
      }
      case 'getAll':
        return ws.getAll(requireString(p, 'collection'))
      case 'set': {
        if (!Object.hasOwn(p, 'value')) throw new KitsyncError('INVALID_ARGUMENT', 'set needs a value')
        const field = optionalString(p, 'field')
        await ws.set(requireString(p, 'collection'), requireString(p, 'key'), p.value as JsonValue, field === undefined ? {} : { field })
        return true
      }
      case 'delete':
        return ws.delete(requireString(p, 'collection'), requireString(p, 'key'))
      case 'list':
        return ws.list()
      case 'exportGit': {
        const message = optionalString(p, 'message')
        return ws.exportGit(requireString(p, 'dir'), message === undefined ? {} : { message })
      }
      case 'importRecords':
        return ws.importRecords(toImportSource(p.source), { dryRun: p.dryRun === true, prune: p.prune === true })
      case 'export':
        return ws.export()
      case 'status': {
        const status = await ws.status()
        return this.peer === undefined ? status : { ...status, network: await this.peer.networkStatus() }
      }
      case 'pair': {
        const ttl = p.ttlMs
        if (ttl !== undefined && (typeof ttl !== 'number' || !(ttl > 0))) throw new KitsyncError('INVALID_ARGUMENT', 'ttlMs must be a positive number')
        return this.requirePeer().createInvite(ttl as number | undefined, { confirm: p.confirm === true, untrusted: p.untrusted === true })
      }
      case 'approve': {
        if (typeof p.accept !== 'boolean') throw new KitsyncError('INVALID_ARGUMENT', 'accept must be true or false')
        if (!this.requirePeer().invites.approve(requireString(p, 'tokenId'), p.accept))
          throw new KitsyncError('NOT_FOUND', 'no device is waiting for approval with that token')
        return true
      }
      case 'join': {
        const waitMs = p.waitMs
        return this.requirePeer().join(requireString(p, 'token'), optionalString(p, 'name') ?? 'device', typeof waitMs === 'number' ? { waitMs } : {})
      }
      case 'devices': {
        const devices = await ws.devices()
        if (this.peer === undefined) return devices
        const seen = new Map((await this.peer.networkStatus()).devices.map((d) => [d.peerId, d.lastSeen]))
        return devices.map((d) => {
          const lastSeen = seen.get(d.peerId)
          return lastSeen === undefined ? d : { ...d, lastSeen }
        })
      }
      case 'revoke': {
        const reason = optionalString(p, 'reason')
        return ws.revoke(requireString(p, 'device'), reason)
      }
      case 'log':
        return ws.log()
      case 'peers':
        return (await this.requirePeer().networkStatus()).devices
      case 'add':
      case 'remove': {
        const elements = requireStringArray(p, 'elements')
        const args = [requireString(p, 'collection'), requireString(p, 'key'), requireString(p, 'field'), elements] as const
        await (request.method === 'add' ? ws.add(...args) : ws.remove(...args))
        return true
      }
      case 'append': {
        if (!Object.hasOwn(p, 'value')) throw new KitsyncError('INVALID_ARGUMENT', 'append needs a value')
        const key = optionalString(p, 'key')
        const field = optionalString(p, 'field')
        return ws.append(requireString(p, 'collection'), p.value as JsonValue, {
          ...(key === undefined ? {} : { key }),
          ...(field === undefined ? {} : { field }),
        })
      }
      case 'collection':
        return ws.collection(requireString(p, 'name'))
      case 'configure': {
        const change = p.change
        if (typeof change !== 'object' || change === null || Array.isArray(change)) throw new KitsyncError('INVALID_ARGUMENT', 'change must be an object')
        return ws.configure(requireString(p, 'name'), change as CollectionChange)
      }
      case 'conflicts':
        return ws.conflicts(optionalString(p, 'collection'))
      case 'resolve': {
        const take = optionalString(p, 'take')
        const choice: ResolveChoice | undefined = take !== undefined ? { take } : Object.hasOwn(p, 'value') ? { value: p.value as JsonValue } : undefined
        if (choice === undefined) throw new KitsyncError('INVALID_ARGUMENT', 'resolve needs take (a device or stamp) or value')
        return ws.resolve(requireString(p, 'collection'), requireString(p, 'id'), choice)
      }
      case 'history': {
        const { collection, key, options } = historyParams(p)
        return ws.history(collection, key, options)
      }
      case 'restore': {
        const { collection, key, target } = historyParams(p)
        return ws.restore(collection, key ?? requireString(p, 'key'), target)
      }
      case 'items':
        return ws.items()
      case 'setItems':
        return ws.setItems({
          ...(p.items === undefined ? {} : { items: patternChange(p.items, 'items') }),
          ...(p.localOnly === undefined ? {} : { localOnly: patternChange(p.localOnly, 'localOnly') }),
        })
      case 'fetch':
        return ws.fetch(requireString(p, 'collection'), optionalTimeout(p))
      case 'syncNow':
        return ws.syncNow(optionalTimeout(p))
      case 'pause': {
        const forMs = p.forMs
        if (forMs !== undefined && (typeof forMs !== 'number' || !Number.isFinite(forMs) || forMs <= 0))
          throw new KitsyncError('INVALID_ARGUMENT', 'forMs must be a positive number of milliseconds')
        return ws.pause(forMs === undefined ? {} : { forMs })
      }
      case 'resume':
        return ws.resume()
      case 'stats':
        return ws.stats()
      case 'reset':
        return ws.resetSync()
      case 'check':
        return ws.check(optionalString(p, 'collection'), { repair: p.repair === true })
      case 'folderAdd':
        return this.requireFolders().add(folderAddParams(p))
      case 'folderList':
        return this.requireFolders().list()
      case 'folderStatus':
        return this.requireFolders().status(optionalString(p, 'name'))
      case 'folderRemove':
        return this.requireFolders().remove(requireString(p, 'name'))
      case 'folderHistory':
        return this.requireFolders().history(requireString(p, 'name'), requireString(p, 'path'))
      case 'folderRestore': {
        const { target } = historyParams({ ...p, collection: '' })
        return this.requireFolders().restore(requireString(p, 'name'), requireString(p, 'path'), target)
      }
      case 'folderSet': {
        // history: 'off', {count?, days?}, or null (the default); include, exclude, maxFileSize: the selection.
        const name = requireString(p, 'name')
        const selection = folderSelectionParams(p)
        const changesSelection = Object.keys(selection).length > 0
        if (!('history' in p) && !changesSelection) throw new KitsyncError('INVALID_ARGUMENT', 'give history, include, exclude or maxFileSize to change')
        const history = !('history' in p) ? undefined : p.history === null ? null : historySettingOf(p.history)
        if (history === undefined && 'history' in p) throw new KitsyncError('INVALID_ARGUMENT', 'history must be "off", {count?, days?} or null')
        const folders = this.requireFolders()
        const kept = history === undefined ? undefined : await folders.setHistory(name, history)
        const item = changesSelection ? await folders.setSelection(name, selection) : undefined
        return {
          name,
          ...(kept === undefined ? {} : { history: kept.history }),
          ...(item === undefined ? {} : { include: item.include, exclude: item.exclude, maxFileSize: item.maxFileSize }),
        }
      }
      default:
        throw new KitsyncError('CONTROL_PROTOCOL', `unknown method ${request.method}`)
    }
  }
}

function requireString(params: Record<string, unknown>, name: string): string {
  const v = params[name]
  if (typeof v !== 'string') throw new KitsyncError('INVALID_ARGUMENT', `${name} must be a string`)
  return v
}

function requireStringArray(params: Record<string, unknown>, name: string): string[] {
  const v = params[name]
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'string')) throw new KitsyncError('INVALID_ARGUMENT', `${name} must be an array of strings`)
  return v as string[]
}

/** `{set?: [..] | null, add?: [..], remove?: [..]}` of a setItems request. */
function patternChange(value: unknown, name: string): PatternChange {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new KitsyncError('INVALID_ARGUMENT', `${name} must be an object with set, add or remove`)
  const v = value as Record<string, unknown>
  const list = (x: unknown, key: string): string[] => {
    if (!Array.isArray(x) || !x.every((s) => typeof s === 'string')) throw new KitsyncError('INVALID_ARGUMENT', `${name}.${key} must be a list of strings`)
    return x as string[]
  }
  return {
    ...(v.set === undefined ? {} : { set: v.set === null ? null : list(v.set, 'set') }),
    ...(v.add === undefined ? {} : { add: list(v.add, 'add') }),
    ...(v.remove === undefined ? {} : { remove: list(v.remove, 'remove') }),
  }
}

function optionalTimeout(params: Record<string, unknown>): { timeoutMs?: number } {
  const t = params.timeoutMs
  if (t === undefined) return {}
  if (typeof t !== 'number' || !(t > 0) || t > 3_600_000)
    throw new KitsyncError('INVALID_ARGUMENT', 'timeoutMs must be a number of milliseconds between 1 and 3600000')
  return { timeoutMs: t }
}

function optionalString(params: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = params?.[name]
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw new KitsyncError('INVALID_ARGUMENT', `${name} must be a string`)
  return v
}

/** True if something accepts connections on the socket path. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
