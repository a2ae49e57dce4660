/**
 * `peer start --log-level`, `--log-file`, `--log-max-size`, `--log-keep`: how much the peer
 * logs and, for a detached (or launchd) peer, where and how its log file rotates.
 */
import type { Command } from 'commander'
import { setDebugSink, type DebugSink } from '../../core/debug-log.js'
import { KitsyncError } from '../../core/errors.js'
import { isLogLevel, LOG_LEVELS, shows, type HeadlessLogOptions, type LogLevel } from '../headless-log.js'
import { DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_BYTES } from '../rotating-log.js'

export interface LogFlags {
  logLevel?: string
  logFile?: string
  logMaxSize?: string
  logKeep?: string
}

export function addLogOptions(cmd: Command): Command {
  return cmd
    .option('--log-level <level>', `what the peer logs: ${LOG_LEVELS.join(', ')} (default info; debug adds the library's debug lines)`)
    .option('--log-file <file>', 'with --headless: write the JSON lines to this file, rotated by size, instead of stdout (--detach sets it)')
    .option('--log-max-size <bytes>', `rotate the log file when it would pass this size (default ${DEFAULT_LOG_MAX_BYTES}, 10 MiB)`)
    .option('--log-keep <n>', `rotated log files kept, peer.log.1 (newest) to peer.log.N (default ${DEFAULT_LOG_KEEP})`)
}

function wholeNumber(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < min)
    throw new KitsyncError('INVALID_ARGUMENT', `${flag} wants a whole number of at least ${min}, not ${JSON.stringify(value)}`)
  return n
}

export interface LogSettings {
  level: LogLevel
  shows: (level: LogLevel) => boolean
  headless: HeadlessLogOptions
  /** At --log-level debug, send core/debug-log.ts lines to `sink` too (they still go to DEBUG=kitsync:*). */
  debugTo: (sink: DebugSink) => Promise<void>
}

/** The log flags, checked (INVALID_ARGUMENT names the bad one). */
export function logOptionsFrom(flags: LogFlags & { headless?: boolean; detach?: boolean }): LogSettings {
  const level = flags.logLevel ?? 'info'
  if (!isLogLevel(level)) throw new KitsyncError('INVALID_ARGUMENT', `--log-level must be one of ${LOG_LEVELS.join(', ')}, not ${JSON.stringify(level)}`)
  if (flags.logFile !== undefined && flags.headless !== true)
    throw new KitsyncError('INVALID_ARGUMENT', '--log-file goes with --headless (a detached peer always logs to HOME/peer.log)')
  const maxBytes = wholeNumber(flags.logMaxSize, '--log-max-size', 1024)
  const keep = wholeNumber(flags.logKeep, '--log-keep', 0)
  return {
    level,
    shows: (l) => shows(level, l),
    headless: {
      level,
      ...(flags.logFile === undefined ? {} : { file: flags.logFile }),
      rotation: { ...(maxBytes === undefined ? {} : { maxBytes }), ...(keep === undefined ? {} : { keep }) },
    },
    debugTo: async (sink) => {
      if (level !== 'debug') return
      // Loaded only at debug level: @libp2p/logger is not needed otherwise.
      const { libp2pDebugSink } = await import('../../net/debug-sink.js')
      setDebugSink((scope, message, err) => {
        libp2pDebugSink(scope, message, err)
        sink(scope, message, err)
      })
    },
  }
}

/** The log flags given, as `peer start` arguments (remembered for `peer restart`, written in a service unit). */
export function logFlagsAsArgs(flags: LogFlags): string[] {
  return [
    ...(flags.logLevel === undefined ? [] : ['--log-level', flags.logLevel]),
    ...(flags.logMaxSize === undefined ? [] : ['--log-max-size', flags.logMaxSize]),
    ...(flags.logKeep === undefined ? [] : ['--log-keep', flags.logKeep]),
  ]
}
