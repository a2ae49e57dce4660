import { describe, expect, it } from 'vitest'
import { DEFAULT_REFUSAL_LIMITS, describeSummary, RefusalLedger, sourceAddress, type RefusalSummary } from '../../src/core/refusal-ledger.js'

/** The counting behind the audit log's summaries of refused strangers (see StrangerAudit). */

function ledger(limits = {}): { l: RefusalLedger; out: RefusalSummary[]; clock: { t: number } } {
  const out: RefusalSummary[] = []
  const clock = { t: 1_000_000 }
  const l = new RefusalLedger(
    { ...DEFAULT_REFUSAL_LIMITS, ...limits },
    (s) => out.push(s),
    () => clock.t,
  )
  return { l, out, clock }
}

describe('RefusalLedger', () => {
  it('reports the first refusal of an address in detail and the rest in one summary at the end of the window', () => {
    const { l, out, clock } = ledger()
    const detailed = Array.from({ length: 2000 }, () => l.refuse('10.0.0.1', 'peerA', !l.allow('10.0.0.1', 'peerA'))).filter(Boolean)
    expect(detailed).toHaveLength(1)
    expect(out).toEqual([])
    clock.t += DEFAULT_REFUSAL_LIMITS.windowMs
    l.rollover()
    expect(out).toHaveLength(1)
    expect(out[0]).toMatchObject({ address: '10.0.0.1', count: 2000, rateLimited: 2000 - DEFAULT_REFUSAL_LIMITS.perPeer, peers: ['peerA'] })
    expect(describeSummary('pairing attempts', out[0] as RefusalSummary)).toMatch(/^2000 refused pairing attempts from 10\.0\.0\.1 in the last 60 s/)
    // A new window: budgets and detail start again.
    expect(l.allow('10.0.0.1', 'peerA')).toBe(true)
    expect(l.refuse('10.0.0.1', 'peerA')).toBe(true)
  })

  it('limits per PeerId, per address and in total', () => {
    const { l } = ledger({ perPeer: 2, perAddress: 3, total: 5 })
    l.refuse('a', 'p1')
    l.refuse('a', 'p1')
    expect(l.allow('a', 'p1')).toBe(false)
    expect(l.allow('a', 'p2')).toBe(true)
    l.refuse('a', 'p2')
    expect(l.allow('a', 'p3')).toBe(false)
    expect(l.allow('b', 'p4')).toBe(true)
    l.refuse('b', 'p4')
    l.refuse('c', 'p5')
    expect(l.allow('d', 'p6')).toBe(false)
  })

  it('keeps its maps bounded: many addresses share one summary, and detail has a budget', () => {
    const { l, out } = ledger({ maxSources: 100, detailed: 10, summaries: 5 })
    let detailed = 0
    for (let i = 0; i < 10_000; i++) for (let k = 0; k < 2; k++) if (l.refuse(`10.0.${i >> 8}.${i & 255}`, `p${i}`)) detailed++
    expect(detailed).toBe(10)
    l.flush()
    expect(out).toHaveLength(6)
    expect(out.slice(0, 5).every((s) => s.addresses === 1 && s.count === 2)).toBe(true)
    const rest = out[5] as RefusalSummary
    expect(rest.address).toBeUndefined()
    expect(rest.count).toBe(20_000 - 5 * 2)
  })

  it('counts an IPv6 /64 as one source, and a relay as one', () => {
    expect(sourceAddress('/ip4/192.0.2.7/tcp/4771')).toBe('192.0.2.7')
    expect(sourceAddress('/ip6/2001:db8:1:2:aaaa::1/tcp/4771')).toBe(sourceAddress('/ip6/2001:db8:1:2:bbbb:cccc:dddd:eeee/tcp/1'))
    expect(sourceAddress('/ip6/2001:db8:1:2::1/tcp/4771')).toBe('2001:db8:1:2::/64')
    expect(sourceAddress('/ip4/192.0.2.7/tcp/4771/p2p/12D3KooRelay/p2p-circuit')).toBe('relay 12D3KooRelay')
  })
})
