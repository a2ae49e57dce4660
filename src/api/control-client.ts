import { createConnection, type Socket } from 'node:net'
import { abortedError } from '../core/abort.js'
import { KitsyncError } from '../core/errors.js'
import { KITSYNC_VERSION } from '../core/version.js'
import { checkControlSocket } from '../store/home.js'
import { CONTROL_PROTOCOL, encodeMessage, LineSplitter, parseServerMessage, type ControlMethod, type HelloResult } from '../protocol/control.js'

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

/** A connection to a running peer's control socket, after the version handshake. */
export class ControlClient {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly eventListeners = new Set<(event: string, data: unknown) => void>()
  private closedError: KitsyncError | undefined
  peer: HelloResult | undefined

  private constructor(private readonly socket: Socket) {
    const splitter = new LineSplitter()
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const line of splitter.push(chunk)) this.receive(line)
      } catch (err) {
        this.fail(err instanceof KitsyncError ? err : new KitsyncError('CONTROL_PROTOCOL', String(err)))
        socket.destroy()
      }
    })
    socket.on('close', () => this.fail(new KitsyncError('CONNECTION_CLOSED', 'the peer closed the control connection')))
    socket.on('error', () => undefined) // 'close' follows and fails what is pending (CONNECTION_CLOSED)
  }

  /**
   * Connect and say hello. Resolves undefined when nothing listens on the socket (no peer
   * runs); fails with VERSION_MISMATCH when the peer is another kitsync version, and with
   * PERMISSION_DENIED, before sending anything, when the socket or its folder is another user's.
   */
  static async connect(path: string): Promise<ControlClient | undefined> {
    if (!(await checkControlSocket(path))) return undefined
    const socket = await new Promise<Socket | undefined>((resolve) => {
      const s = createConnection(path)
      s.once('connect', () => resolve(s))
      s.once('error', () => resolve(undefined))
    })
    if (socket === undefined) return undefined
    const client = new ControlClient(socket)
    try {
      client.peer = (await client.request('hello', { protocol: CONTROL_PROTOCOL, version: KITSYNC_VERSION })) as HelloResult
    } catch (err) {
      client.close()
      throw err
    }
    return client
  }

  /**
   * Send a request and wait for its answer. `signal` aborted: rejects with ABORTED and stops
   * waiting (an answer that comes later is dropped); the request is not sent if it already
   * aborted. The protocol has no cancel: the peer carries on with a request already sent, and
   * answers the connection's later requests after it (it answers a connection in order).
   */
  request(method: ControlMethod, params?: Record<string, unknown>, options: { signal?: AbortSignal; what?: string } = {}): Promise<unknown> {
    const { signal } = options
    const what = options.what ?? method
    if (this.closedError !== undefined) return Promise.reject(this.closedError)
    if (signal?.aborted === true) return Promise.reject(abortedError(what, signal))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.pending.delete(id)
        reject(abortedError(what, signal))
      }
      const done = (): void => signal?.removeEventListener('abort', onAbort)
      this.pending.set(id, {
        resolve: (value) => {
          done()
          resolve(value)
        },
        reject: (err) => {
          done()
          reject(err)
        },
      })
      signal?.addEventListener('abort', onAbort, { once: true })
      this.socket.write(encodeMessage(params === undefined ? { id, method } : { id, method, params }))
    })
  }

  onEvent(listener: (event: string, data: unknown) => void): () => void {
    this.eventListeners.add(listener)
    return () => this.eventListeners.delete(listener)
  }

  /** Resolves when the connection closes (for whatever reason). */
  get closed(): boolean {
    return this.closedError !== undefined
  }

  close(): void {
    this.socket.end()
    this.socket.destroy()
  }

  private receive(line: string): void {
    if (line.trim() === '') return
    const message = parseServerMessage(line)
    if ('event' in message) {
      for (const listener of this.eventListeners) listener(message.event, message.data)
      return
    }
    const p = this.pending.get(message.id)
    if (p === undefined) return
    this.pending.delete(message.id)
    if (message.error !== undefined) p.reject(KitsyncError.fromJSON(message.error))
    else p.resolve(message.result)
  }

  private fail(err: KitsyncError): void {
    if (this.closedError !== undefined) return
    this.closedError = err
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
    for (const listener of this.eventListeners) listener('closed', undefined)
  }
}
