import { describe, expect, it } from 'vitest'
import { DashboardSessions, LOGIN_CODE_TTL_MS, loginUrl, makeLoginCode, SESSION_TTL_MS, sessionCookieName } from '../../src/daemon/dashboard-login.js'

const TOKEN = 'a'.repeat(43)
const PID = 4242
const T0 = 1_800_000_000_000

function sessions(clock: { now: number }): DashboardSessions {
  return new DashboardSessions(TOKEN, PID, () => clock.now)
}

const cookieOf = (s: DashboardSessions, session: string): string => s.cookie(session, 4772).split(';')[0] as string

describe('dashboard login codes and sessions', () => {
  it('trades a code once for a session cookie (HttpOnly, SameSite=Strict, named for the port)', () => {
    const clock = { now: T0 }
    const s = sessions(clock)
    const code = makeLoginCode(TOKEN, PID, T0)
    const session = s.redeem(code)
    expect(session).toMatch(/^[\w-]{43}$/)
    expect(s.redeem(code)).toBeUndefined() // once
    const header = s.cookie(session as string, 4772)
    expect(header).toBe(`kitsync_session_4772=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`)
    expect(s.check(`other=1; ${cookieOf(s, session as string)}`, 4772)).toBe(true)
    expect(s.check(cookieOf(s, session as string), 4773)).toBe(false) // another peer's port
    expect(s.check(`${sessionCookieName(4772)}=${'x'.repeat(43)}`, 4772)).toBe(false)
    expect(s.check(undefined, 4772)).toBe(false)
  })

  it('refuses a code past its expiry, for another pid or token, or tampered with', () => {
    const clock = { now: T0 }
    const s = sessions(clock)
    const late = makeLoginCode(TOKEN, PID, T0)
    clock.now = T0 + LOGIN_CODE_TTL_MS
    expect(s.redeem(late)).toBeUndefined()
    expect(s.redeem(makeLoginCode(TOKEN, PID + 1, clock.now))).toBeUndefined()
    expect(s.redeem(makeLoginCode('b'.repeat(43), PID, clock.now))).toBeUndefined()
    const good = makeLoginCode(TOKEN, PID, clock.now)
    const [v, expiry, nonce, mac] = good.split('.') as [string, string, string, string]
    const later = (parseInt(expiry, 36) + 60 * 60_000).toString(36)
    for (const bad of [
      `${v}.${later}.${nonce}.${mac}`, // a longer life, with the old MAC
      `${v}.${expiry}.${nonce}x.${mac}`,
      `${v}.${expiry}.${nonce}.${mac.slice(0, -2)}`,
      `v2.${expiry}.${nonce}.${mac}`,
      good.slice(0, -1),
      '',
      'v1...',
    ])
      expect(s.redeem(bad), bad).toBeUndefined()
    expect(s.redeem(good)).toBeDefined() // none of those used it up
  })

  it('ends a session after SESSION_TTL_MS', () => {
    const clock = { now: T0 }
    const s = sessions(clock)
    const session = s.redeem(makeLoginCode(TOKEN, PID, T0)) as string
    clock.now = T0 + SESSION_TTL_MS - 1
    expect(s.check(cookieOf(s, session), 4772)).toBe(true)
    clock.now = T0 + SESSION_TTL_MS
    expect(s.check(cookieOf(s, session), 4772)).toBe(false)
  })

  it('keeps at most 64 sessions, dropping the oldest', () => {
    const clock = { now: T0 }
    const s = sessions(clock)
    const all = Array.from({ length: 65 }, () => s.redeem(makeLoginCode(TOKEN, PID, T0)) as string)
    expect(s.check(cookieOf(s, all[0] as string), 4772)).toBe(false)
    expect(all.slice(1).every((id) => s.check(cookieOf(s, id), 4772))).toBe(true)
  })

  it('builds the login URL from the server URL', () => {
    expect(loginUrl('http://127.0.0.1:4772/', TOKEN, PID, T0)).toMatch(/^http:\/\/127\.0\.0\.1:4772\/login\?code=v1\.[0-9a-z]+\.[\w-]{22}\.[\w-]{43}$/)
  })
})
