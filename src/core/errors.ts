/**
 * One error class for the whole of kitsync, told apart by `code` (a closed set).
 * The CLI maps each code to an exit status and prints `kitsync: CODE: message`.
 */

export const ERROR_CODES = {
  // usage and input: exit 2
  INVALID_ARGUMENT: 2,
  UNKNOWN_COMMAND: 2,
  INVALID_JSON: 2,
  INVALID_NAME: 2,
  RECORD_TOO_LARGE: 2,
  // lookups: exit 3
  UNKNOWN_COLLECTION: 3,
  NOT_FOUND: 3,
  // the home folder and the process that owns it: exit 4
  HOME_UNREADABLE: 4,
  PEER_ALREADY_RUNNING: 4,
  PEER_NOT_RUNNING: 4,
  STORE_LOCKED: 4,
  VERSION_MISMATCH: 4,
  /** The home folder or control socket belongs to another user, or is not private. */
  PERMISSION_DENIED: 4,
  /** The HTTP API without its token, or with a wrong one (status 401). */
  UNAUTHENTICATED: 4,
  /** `join` into a home folder that holds another workspace's data. */
  WORKSPACE_EXISTS: 4,
  // stored data: exit 5
  DATA_CORRUPTION: 5,
  STORAGE_FAILED: 5,
  // control API transport: exit 6
  CONTROL_PROTOCOL: 6,
  CONNECTION_CLOSED: 6,
  ABORTED: 6,
  /** `peer stop`: the peer was asked to stop and was still running at the deadline. */
  PEER_STOP_TIMEOUT: 6,
  // peers and the network: exit 7
  PROTOCOL_ERROR: 7,
  WORKSPACE_MISMATCH: 7,
  NOT_A_MEMBER: 7,
  RATE_LIMITED: 7,
  PEER_UNREACHABLE: 7,
  /** A listen address (`--listen`) whose port another process holds. */
  PORT_IN_USE: 7,
  SYNC_PAUSED: 7,
  // pairing tokens: exit 8
  TOKEN_INVALID: 8,
  TOKEN_EXPIRED: 8,
  TOKEN_USED: 8,
  TOKEN_REFUSED: 8,
  // device trust: exit 9
  DEVICE_LIMIT_EXCEEDED: 9,
  DEVICE_REVOKED: 9,
  UNKNOWN_DEVICE: 9,
  // a collection's rules refuse the write (nothing is written): exit 10
  INVALID_RECORD: 10,
  LIMIT_EXCEEDED: 10,
  APPEND_ONLY: 10,
  SECRET_REFUSED: 10,
  PRIVATE_KEY_REFUSED: 10,
  /** `folder restore`: the file on disk holds an edit not captured yet (the changed-under-us rule); nothing was written. */
  FILE_CHANGED: 10,
  UNKNOWN_CONFLICT: 3,
  /** `kitsync doctor`: a check failed (each says what to do). */
  CHECK_FAILED: 11,
  // the system git (`export --git`): exit 12
  /** No `git` on PATH. */
  GIT_NOT_FOUND: 12,
  /** A git command failed (its own message follows). */
  GIT_FAILED: 12,
  // the user's service manager (`service install`): exit 13
  /** systemd or launchd refused to enable or start the unit, or this platform has neither. */
  SERVICE_FAILED: 13,
  // anything else is a bug: exit 1
  INTERNAL: 1,
} as const satisfies Record<string, number>

export type ErrorCode = keyof typeof ERROR_CODES

export interface KitsyncErrorDetails {
  /** The collection concerned, when there is one. */
  collection?: string
  [key: string]: unknown
}

export class KitsyncError extends Error {
  override readonly name = 'KitsyncError'
  readonly code: ErrorCode
  readonly details: KitsyncErrorDetails

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: KitsyncErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options.details ?? {}
  }

  /** Serialisable form used by the control API and `--json` output. */
  toJSON(): { code: ErrorCode; message: string; details?: KitsyncErrorDetails } {
    return Object.keys(this.details).length > 0 ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message }
  }

  static fromJSON(value: unknown): KitsyncError {
    if (typeof value === 'object' && value !== null) {
      const v = value as { code?: unknown; message?: unknown; details?: unknown }
      if (typeof v.code === 'string' && isErrorCode(v.code) && typeof v.message === 'string') {
        const details = typeof v.details === 'object' && v.details !== null ? (v.details as KitsyncErrorDetails) : {}
        return new KitsyncError(v.code, v.message, { details })
      }
    }
    return new KitsyncError('CONTROL_PROTOCOL', 'malformed error from the peer')
  }
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

export function isKitsyncError(err: unknown, code?: ErrorCode): err is KitsyncError {
  return err instanceof KitsyncError && (code === undefined || err.code === code)
}

export function exitCodeFor(err: unknown): number {
  return err instanceof KitsyncError ? ERROR_CODES[err.code] : ERROR_CODES.INTERNAL
}

/** Wrap anything thrown into a KitsyncError, keeping it as the cause. */
export function toKitsyncError(err: unknown): KitsyncError {
  if (err instanceof KitsyncError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new KitsyncError('INTERNAL', message, { cause: err })
}
