import { pino } from 'pino'

/**
 * `peer start --headless`: one JSON object per line on stdout (pino), for journald and log
 * shippers. Every line has `event`; tokens, keys and secrets are never passed in, and the
 * fields that could carry one are redacted all the same.
 */
export interface HeadlessLog {
  event(event: string, payload: object, level?: 'info' | 'warn' | 'error'): void
  flush(): void
}

export function headlessLog(): HeadlessLog {
  const logger = pino(
    {
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', 'keys', 'secret', '*.token', '*.keys', '*.secret'], censor: '[redacted]' },
    },
    pino.destination({ dest: 1, sync: true }),
  )
  return {
    event: (event, payload, level = 'info') => logger[level]({ event, ...payload }, event),
    flush: () => logger.flush(),
  }
}
