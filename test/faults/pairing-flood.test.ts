import { readFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { describe, expect, it } from 'vitest'
import { kitsync, kitsyncJson, kitsyncOk, makeHome, stopProc } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'

/**
 * A stranger floods a member with bogus pairing attempts over real TCP (loopback): a libp2p node
 * that holds no token opens the pairing protocol 2,000 times, as fast as it can, each time with
 * a `join` for the right workspace and a made-up token id. Before the fix each refusal became
 * one synced `_audit` entry (and one stdout line), so the log of every member grew with the
 * flood. Now: a few audit entries (the first refusal in detail, then one summary per address and
 * minute that names the count), bounded memory, and a device with a real token still pairs
 * during the flood, from the same address.
 */

const ATTEMPTS = 2000
const PARALLEL = 16
const PAIR_PROTOCOL_ID = '/kitsync/pair/1.0.0'
const SYNC_PROTOCOL_ID = '/kitsync/sync/2.0.0'
const { peer, invite, forget } = devicesOfTest()

interface LogEntry {
  type: string
  peer?: string
  reason: string
}

async function auditLog(home: string): Promise<LogEntry[]> {
  const out = await kitsyncOk(home, ['log', '--json'])
  return out.trim() === ''
    ? []
    : out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as LogEntry)
}

/** Resident set size of a process, in bytes (Linux /proc). */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(kb) * 1024
}

describe('pairing flood from a stranger', () => {
  it.skipIf(process.platform !== 'linux')(
    '2,000 bogus joins: a bounded audit log with a summary, bounded memory, and a real pairing still succeeds',
    async () => {
      const [ha, hb] = [await makeHome(), await makeHome()]
      const pa = await peer(ha)
      const address = (pa.started as unknown as { listen: string[] }).listen[0] as string
      // A first token founds the membership (the inviter becomes a member), as a real user does.
      const realToken = await invite(ha)
      const workspaceId = pa.started.workspaceId
      const auditBefore = (await auditLog(ha)).length
      const rssBefore = await rssOf(pa.proc.pid)

      const stranger = await createLibp2p({
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
      })
      const answers = new Map<string, number>()
      let sent = 0
      let legit: Promise<{ code: number | null; stdout: string; stderr: string }> | undefined
      try {
        const target = multiaddr(address)
        const attempt = async (): Promise<void> => {
          const stream = await stranger.dialProtocol(target, PAIR_PROTOCOL_ID)
          const lp = lpStream(stream)
          try {
            await lp.write(new TextEncoder().encode(JSON.stringify({ t: 'join', tokenId: randomBytes(16).toString('hex'), name: 'flood', workspaceId })))
            const answer = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(15_000) })).subarray())) as {
              t: string
              code?: string
            }
            const key = answer.t === 'error' ? (answer.code ?? '?') : answer.t
            answers.set(key, (answers.get(key) ?? 0) + 1)
          } catch {
            answers.set('(no answer)', (answers.get('(no answer)') ?? 0) + 1)
          } finally {
            await stream.close().catch(() => stream.abort(new Error('done')))
          }
        }
        const worker = async (): Promise<void> => {
          while (sent < ATTEMPTS) {
            sent++
            // Halfway through the flood, a real device pairs with a real token (from the same
            // address: on loopback everything is 127.0.0.1).
            if (sent === ATTEMPTS / 2) legit = kitsync(hb, ['join', realToken, '--name', 'real-phone', '--json', ...NET], { timeoutMs: 60_000 })
            await attempt()
          }
        }
        await Promise.all(Array.from({ length: PARALLEL }, worker))
      } finally {
        await stranger.stop()
      }
      const answered = [...answers.entries()].filter(([k]) => k !== '(no answer)').reduce((n, [, v]) => n + v, 0)
      expect(answered, JSON.stringify(Object.fromEntries(answers))).toBeGreaterThanOrEqual(ATTEMPTS * 0.95)
      expect(answers.get('challenge') ?? 0).toBe(0)

      // The real device paired during the flood.
      const joined = await (legit as Promise<{ code: number | null; stdout: string; stderr: string }>)
      expect(joined.code, joined.stderr).toBe(0)
      const devices = await kitsyncJson<{ name: string; state: string }[]>(ha, ['devices', '--json'])
      expect(devices.find((d) => d.name === 'real-phone')?.state).toBe('trusted')

      // While the peer runs: at most the first refusal in detail (the summary comes at the end of
      // the minute, or when the peer stops).
      const during = (await auditLog(ha)).slice(auditBefore).filter((e) => e.type === 'pairing-refused')
      expect(during.length, JSON.stringify(during.slice(0, 5))).toBeLessThanOrEqual(2)
      // Answered fast: after its first refusals, the flooding source is told RATE_LIMITED unread.
      expect(answers.get('RATE_LIMITED') ?? 0, JSON.stringify(Object.fromEntries(answers))).toBeGreaterThan(ATTEMPTS * 0.9)

      // Memory: the flood's 2,000 streams may cost the peer some buffers, not a log that grows
      // with it. Before the fix the audit log alone took RSS from 83 to 185 MB in 5,071 attempts.
      const rssAfter = await rssOf(pa.proc.pid)
      expect(rssAfter - rssBefore, `RSS ${rssBefore} -> ${rssAfter}`).toBeLessThan(RSS_GROWTH_LIMIT)

      // Stopping the peer writes the summary of the open window.
      await stopProc(pa.proc)
      forget(pa)
      const added = (await auditLog(ha)).slice(auditBefore).filter((e) => e.type === 'pairing-refused')
      expect(added.length, JSON.stringify(added.slice(0, 5))).toBeLessThanOrEqual(3)
      const summary = added.find((e) => /^\d+ refused pairing attempts from /.test(e.reason))
      expect(summary, JSON.stringify(added)).toBeDefined()
      const counted = Number(/^(\d+) refused/.exec(summary?.reason ?? '')?.[1])
      expect(counted).toBeGreaterThanOrEqual(answered)
      expect(counted).toBeLessThanOrEqual(ATTEMPTS)
      expect(summary?.reason).toContain('127.0.0.1')
    },
    180_000,
  )
})

describe('silent pairing streams', () => {
  it('are dropped after 5 s; past 32 at once from one address, the next is answered RATE_LIMITED at once', async () => {
    const [ha, hb] = [await makeHome(), await makeHome()]
    const pa = await peer(ha)
    const target = multiaddr((pa.started as unknown as { listen: string[] }).listen[0] as string)
    const token = await invite(ha)
    const node = (): ReturnType<typeof createLibp2p> =>
      createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    const [holder, knocker] = [await node(), await node()]
    try {
      const opened = Date.now()
      const silent = await Promise.all(Array.from({ length: 32 }, () => holder.dialProtocol(target, PAIR_PROTOCOL_ID)))
      // Each silent stream ends with an answer (an error) once the inviter stops waiting for its join.
      const ended = Promise.all(
        silent.map(async (stream) => {
          await lpStream(stream)
            .read({ signal: AbortSignal.timeout(15_000) })
            .catch(() => undefined)
          return Date.now() - opened
        }),
      )
      const stream = await knocker.dialProtocol(target, PAIR_PROTOCOL_ID)
      const lp = lpStream(stream)
      const asked = Date.now()
      await lp.write(new TextEncoder().encode(JSON.stringify({ t: 'join', tokenId: 'f'.repeat(32), workspaceId: pa.started.workspaceId })))
      const answer = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())) as { code?: string }
      expect(answer.code).toBe('RATE_LIMITED')
      expect(Date.now() - asked).toBeLessThan(2000)
      const times = await ended
      // 5 s for the join, plus the answer: well under the 15 s of a pairing step.
      expect(Math.max(...times)).toBeLessThan(10_000)
      expect(Math.min(...times)).toBeGreaterThanOrEqual(4500)
    } finally {
      await holder.stop()
      await knocker.stop()
    }
    // Then a real device pairs.
    await kitsyncOk(hb, ['join', token, '--name', 'after', ...NET])
  }, 60_000)
})

describe('sync-protocol knocks from strangers under new device ids', () => {
  it('100 strangers, each with its own PeerId: a few audit entries, one summary with the count', async () => {
    const STRANGERS = 100
    const ha = await makeHome()
    const pa = await peer(ha)
    const address = (pa.started as unknown as { listen: string[] }).listen[0] as string
    await invite(ha) // founds the membership
    const auditBefore = (await auditLog(ha)).length
    let refusedAtPeer = 0
    // A few at a time: libp2p lets one address open 32 connections a second.
    for (let i = 0; i < STRANGERS; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const stranger = await createLibp2p({
            addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
            transports: [tcp()],
            connectionEncrypters: [noise()],
            streamMuxers: [yamux()],
          })
          try {
            // libp2p resets a connection over its 32 a second from one address: dial again.
            let stream
            for (let attempt = 0; stream === undefined; attempt++) {
              stream = await stranger.dialProtocol(multiaddr(address), SYNC_PROTOCOL_ID).catch(async (err: unknown) => {
                if (attempt >= 20) throw err
                await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)))
                return undefined
              })
            }
            // Refused: the stream is reset without a byte.
            for await (const chunk of stream) expect(chunk).toBeUndefined()
          } catch {
            // reset, as expected
          } finally {
            await stranger.stop()
          }
        }),
      )
    }
    refusedAtPeer = (await kitsyncJson<{ network?: { refusedConnections: number } }>(ha, ['status', '--json'])).network?.refusedConnections ?? 0
    expect(refusedAtPeer).toBe(STRANGERS)
    const during = (await auditLog(ha)).slice(auditBefore).filter((e) => e.type === 'connection-refused')
    expect(during.length, JSON.stringify(during.slice(0, 3))).toBeLessThanOrEqual(1)
    await stopProc(pa.proc)
    forget(pa)
    const added = (await auditLog(ha)).slice(auditBefore).filter((e) => e.type === 'connection-refused')
    expect(added.length, JSON.stringify(added.slice(0, 3))).toBeLessThanOrEqual(2)
    const summary = added.find((e) => /^\d+ refused connections from 127\.0\.0\.1 /.test(e.reason))
    expect(summary?.reason, JSON.stringify(added)).toMatch(new RegExp(`^${STRANGERS} refused connections from 127\\.0\\.0\\.1 .*several device ids`))
  }, 120_000)
})

/**
 * RSS bound for the member during the flood: 80 MB above where it was. Measured on this machine
 * (a CLI peer idling at ~80 MB, 16 streams at a time): the heap grows with the garbage of the
 * flood's streams (libp2p stream set-up, multistream-select, JSON) until V8 collects it, +42-48
 * MB after 2,000 attempts with or without the fix, and with the fix it levels off at +70-75 MB
 * (10,000 to 30,000 attempts: 152-156 MB). Before the fix it kept growing with the `_audit`
 * document, one record per attempt: 185 MB after 10,000 and rising (the issue: 83 -> 185 MB for
 * 5,071). What fails this bound is memory kept per attempt, ~40 KiB or more each.
 */
const RSS_GROWTH_LIMIT = 80 * 1024 * 1024
