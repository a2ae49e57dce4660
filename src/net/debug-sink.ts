import type { Logger } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import type { DebugSink } from '../core/debug-log.js'

const loggers = new Map<string, Logger>()

/**
 * core/debug-log.ts's lines through @libp2p/logger, as `kitsync:<scope>`: one switch,
 * `DEBUG=kitsync:*`, shows them and net/'s own (which log through @libp2p/logger directly).
 */
export const libp2pDebugSink: DebugSink = (scope, message, err) => {
  let log = loggers.get(scope)
  if (log === undefined) {
    log = logger(`kitsync:${scope}`)
    loggers.set(scope, log)
  }
  if (err === undefined) log('%s', message)
  else log('%s: %e', message, err)
}
