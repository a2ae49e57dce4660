import { pino, type DestinationStream } from 'pino'
import type { DebugSink } from '../core/debug-log.js'
import { RotatingLogFile, type RotationOptions } from './rotating-log.js'

/**
 * `peer start --headless`: one JSON object per line on stdout (pino), for journald and log
 * shippers; with `file` (a detached or launchd peer), to that file, rotated by size
 * (rotating-log.ts). Every line has `event`; tokens, keys and secrets are never passed in, and
 * the fields that could carry one are redacted all the same. A line about a device carries its
 * name (`device`) beside its id, once the name is known.
 */
export interface HeadlessLog {
  event(event: string, payload: object, level?: LogLevel): void
  /**
   * Device names by id, for the `device` field (the devices of the workspace at start). Lines
   * logged before this is called (the network starts before the peer can be asked) are held
   * and written then, with the names.
   */
  knowDevices(devices: readonly { peerId: string; name: string }[]): void
  /** core/debug-log.ts lines as `debug` entries (written only at --log-level debug). */
  debugSink: DebugSink
  flush(): void
  close(): void
}

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value)
}

/** Whether a line at `level` is shown at the threshold `threshold`. */
export function shows(threshold: LogLevel, level: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(threshold)
}

export interface HeadlessLogOptions {
  level?: LogLevel
  /** Write to this file (rotated) instead of stdout. */
  file?: string
  rotation?: RotationOptions
}

/** Lines that are always written, whatever the level: `start --detach` and scripts wait for them. */
const LIFECYCLE = new Set(['started', 'stopping', 'stopped'])

export function headlessLog(options: HeadlessLogOptions = {}): HeadlessLog {
  const file = options.file === undefined ? undefined : new RotatingLogFile(options.file, options.rotation)
  const destination: DestinationStream = file === undefined ? pino.destination({ dest: 1, sync: true }) : { write: (line: string) => file.write(line) }
  const settings = {
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', 'keys', 'secret', '*.token', '*.keys', '*.secret'], censor: '[redacted]' },
  }
  const logger = pino({ ...settings, level: options.level ?? 'info' }, destination)
  const lifecycle = pino({ ...settings, level: 'info' }, destination)
  const names = new Map<string, string>()
  const named = (payload: object): object => {
    const p = payload as { peerId?: unknown; deviceId?: unknown; name?: unknown }
    const id = typeof p.peerId === 'string' ? p.peerId : typeof p.deviceId === 'string' ? p.deviceId : undefined
    const name = id === undefined ? undefined : names.get(id)
    return name === undefined || typeof p.name === 'string' ? payload : { device: name, ...payload }
  }
  const write = (event: string, payload: object, level: LogLevel): void => {
    ;(LIFECYCLE.has(event) ? lifecycle : logger)[level]({ event, ...named(payload) }, event)
  }
  let held: [string, object, LogLevel][] | undefined = []
  return {
    event: (event, payload, level = 'info') => {
      const p = payload as { peerId?: unknown; name?: unknown }
      if ((event === 'device:joined' || event === 'device:revoked') && typeof p.peerId === 'string' && typeof p.name === 'string') names.set(p.peerId, p.name)
      if (held !== undefined && !LIFECYCLE.has(event)) held.push([event, payload, level])
      else write(event, payload, level)
    },
    knowDevices: (devices) => {
      for (const d of devices) names.set(d.peerId, d.name)
      const lines = held ?? []
      held = undefined
      for (const [event, payload, level] of lines) write(event, payload, level)
    },
    debugSink: (scope, message, err) => {
      if (!logger.isLevelEnabled('debug')) return
      logger.debug({ event: 'debug', scope, ...(err === undefined ? {} : { error: err instanceof Error ? err.message : String(err) }) }, message)
    },
    flush: () => {
      // Peer.start failed before the devices were known: what it logged is still written.
      if (held !== undefined) for (const [event, payload, level] of held.splice(0)) write(event, payload, level)
      logger.flush()
    },
    close: () => file?.close(),
  }
}
