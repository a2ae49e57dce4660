import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * The browser's way in to the peer's HTTP server. A browser opening a page cannot send the
 * bearer token, so `kitsync dashboard` (which can read HOME/http.token) makes a login code: an
 * expiry, a nonce and an HMAC of both under the token, bound to the running peer's pid. The
 * server takes a code once (`/login?code=...`), before its expiry, and answers with a session
 * cookie (HttpOnly, SameSite=Strict) that stands in for the token until it expires or the peer
 * stops (sessions live only in this process's memory).
 *
 * Stateless codes keep the CLI off the control socket for this and still work once: the server
 * remembers the nonces it took until they expire.
 */

/** How long a login code works: the browser opened by `kitsync dashboard` takes it within a second. */
export const LOGIN_CODE_TTL_MS = 2 * 60_000
/** How long a browser session lasts after the login (the peer's restart ends it sooner). */
export const SESSION_TTL_MS = 24 * 60 * 60_000
/** Sessions kept at once; a new login past this drops the oldest. */
const MAX_SESSIONS = 64
/** Where the browser trades a code for a session cookie. */
export const LOGIN_PATH = '/login'

const CODE_VERSION = 'v1'

function mac(token: string, pid: number, expiry: string, nonce: string): Buffer {
  return createHmac('sha256', token).update(`kitsync dashboard login\n${pid}\n${expiry}\n${nonce}`).digest()
}

/** A login code for the peer with this pid (its http.json says which), valid for LOGIN_CODE_TTL_MS. */
export function makeLoginCode(token: string, pid: number, now = Date.now()): string {
  const expiry = (now + LOGIN_CODE_TTL_MS).toString(36)
  const nonce = randomBytes(16).toString('base64url')
  return `${CODE_VERSION}.${expiry}.${nonce}.${mac(token, pid, expiry, nonce).toString('base64url')}`
}

/** The URL that logs a browser in: the server's URL (ending in '/') with a fresh code. */
export function loginUrl(url: string, token: string, pid: number, now = Date.now()): string {
  return `${url}${LOGIN_PATH.slice(1)}?code=${makeLoginCode(token, pid, now)}`
}

/** The name of the session cookie: with the port, since cookies do not tell ports apart (two peers on one machine). */
export function sessionCookieName(port: number): string {
  return `kitsync_session_${port}`
}

export class DashboardSessions {
  /** Nonces of codes already taken, with their expiry (forgotten once the code would have expired anyway). */
  private readonly usedNonces = new Map<string, number>()
  /** Session id -> expiry, in login order. */
  private readonly sessions = new Map<string, number>()

  constructor(
    private readonly token: string,
    private readonly pid: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A new session id for a valid, unused, unexpired code (the code is then used up); undefined
   * for anything else, with nothing said about why (no oracle for guessing).
   */
  redeem(code: string): string | undefined {
    const now = this.now()
    this.prune(now)
    const parts = code.split('.')
    if (parts.length !== 4 || parts[0] !== CODE_VERSION) return undefined
    const [, expiry = '', nonce = '', given = ''] = parts
    const expiresAt = parseInt(expiry, 36)
    if (!/^[0-9a-z]{1,12}$/.test(expiry) || !Number.isSafeInteger(expiresAt)) return undefined
    const expected = mac(this.token, this.pid, expiry, nonce)
    const givenBytes = Buffer.from(given, 'base64url')
    if (givenBytes.length !== expected.length || !timingSafeEqual(givenBytes, expected)) return undefined
    // A code whose expiry lies further ahead than any code made now could have: not ours to honour.
    if (expiresAt <= now || expiresAt > now + LOGIN_CODE_TTL_MS + 60_000) return undefined
    if (this.usedNonces.has(nonce)) return undefined
    this.usedNonces.set(nonce, expiresAt)
    const session = randomBytes(32).toString('base64url')
    this.sessions.set(session, now + SESSION_TTL_MS)
    while (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string)
    return session
  }

  /** Whether the Cookie header carries a live session of this server (the cookie named for its port). */
  check(cookieHeader: string | undefined, port: number): boolean {
    const value = cookieValue(cookieHeader, sessionCookieName(port))
    if (value === undefined) return false
    const expiresAt = this.sessions.get(value)
    if (expiresAt === undefined) return false
    if (expiresAt <= this.now()) {
      this.sessions.delete(value)
      return false
    }
    return true
  }

  /** The Set-Cookie header value of a new session. */
  cookie(session: string, port: number): string {
    return `${sessionCookieName(port)}=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`
  }

  private prune(now: number): void {
    for (const [nonce, expiresAt] of this.usedNonces) if (expiresAt <= now) this.usedNonces.delete(nonce)
    for (const [session, expiresAt] of this.sessions) if (expiresAt <= now) this.sessions.delete(session)
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
