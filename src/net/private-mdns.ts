import { logger } from '@libp2p/logger'
import multicastDns from 'multicast-dns'
import { instanceName, open, seal, SERVICE, toTxt, type Announcement } from './discovery-record.js'

export interface PrivateMdnsOptions {
  /** Workspace keys, current epoch first; empty until this device has one. */
  keys: () => Uint8Array[]
  /** What to announce (this device's id and addresses). */
  self: () => Announcement
  onPeer: (peer: Announcement) => void
  intervalMs?: number
}

const ANSWER_INTERVAL_MS = 1000

const log = logger('kitsync:net:mdns')

/**
 * mDNS discovery that only members can read (see discovery-record.ts). Queries for the
 * kitsync service every interval and answers queries with this device's sealed record under
 * the current window's name. Answers that no key opens are ignored.
 */
export class PrivateMdns {
  private readonly mdns: ReturnType<typeof multicastDns>
  private readonly timer: NodeJS.Timeout
  private lastAnswer = 0

  constructor(private readonly options: PrivateMdnsOptions) {
    this.mdns = multicastDns()
    this.mdns.on('query', (query) => {
      // At most one answer a second (RFC 6762 asks no more of a responder): anyone on the LAN
      // may send queries, and each answer costs a seal and a multicast packet.
      if (!query.questions.some((q) => q.name === SERVICE && q.type === 'PTR') || Date.now() - this.lastAnswer < ANSWER_INTERVAL_MS) return
      this.lastAnswer = Date.now()
      this.announce()
    })
    this.mdns.on('response', (response) => this.onResponse(response.answers.concat(response.additionals ?? [])))
    // A packet that cannot be sent or parsed costs only this round: the next query goes out
    // within the interval (1 s by default).
    this.mdns.on('warning', (err: unknown) => log('mDNS warning: %e', err))
    this.mdns.on('error', (err: unknown) => log('mDNS error: %e', err))
    this.timer = setInterval(() => this.query(), options.intervalMs ?? 1000)
    this.timer.unref()
    this.query()
    this.announce()
  }

  stop(): void {
    clearInterval(this.timer)
    this.mdns.destroy()
  }

  private query(): void {
    this.mdns.query({ questions: [{ name: SERVICE, type: 'PTR' }] })
  }

  private announce(): void {
    const key = this.options.keys()[0]
    if (key === undefined) return
    const now = Date.now()
    const name = instanceName(key, now)
    const sealed = seal(key, name, this.options.self(), now)
    this.mdns.respond({
      answers: [
        { name: SERVICE, type: 'PTR', data: name },
        { name, type: 'TXT', data: toTxt(sealed) },
      ],
    })
  }

  private onResponse(records: { name: string; type: string; data?: unknown }[]): void {
    const keys = this.options.keys()
    if (keys.length === 0) return
    for (const r of records) {
      if (r.type !== 'TXT' || !r.name.endsWith(`.${SERVICE}`) || !Array.isArray(r.data)) continue
      const sealed = Buffer.concat((r.data as unknown[]).filter((x): x is Buffer => Buffer.isBuffer(x)))
      // The name is bound to the key that made it: try each key on its own name.
      for (const key of keys) {
        const peer = open([key], r.name, sealed, Date.now())
        if (peer !== undefined) {
          if (peer.peerId !== this.options.self().peerId) this.options.onPeer(peer)
          break
        }
      }
    }
  }
}
