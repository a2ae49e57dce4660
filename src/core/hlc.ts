/**
 * Hybrid logical clock (Kulkarni et al.): stamps that follow wall-clock time when clocks agree
 * and still order causally when they do not. A stamp is a string that sorts like the clock:
 *
 *   `<ms since epoch, base 36, 9 digits>.<counter, base 36, 4 digits>.<node tag>`
 *
 * The node tag (the end of the device id) makes stamps of different devices unique, and
 * breaks ties between equal times deterministically.
 */

const MAX_COUNTER = 36 ** 4 - 1
/** Stamps from further ahead than this are not followed (a device with a broken clock must not drag everyone along). */
export const MAX_DRIFT_MS = 24 * 3600 * 1000

export interface HlcParts {
  ms: number
  counter: number
  node: string
}

export class Hlc {
  readonly node: string
  private ms = 0
  private counter = 0
  private readonly clock: () => number
  private msText: string | undefined
  private msTextOf = -1

  constructor(node: string, clock: () => number = Date.now) {
    if (!/^[A-Za-z0-9]{1,16}$/.test(node)) throw new Error(`invalid clock node tag ${JSON.stringify(node)}`)
    this.node = node
    this.clock = clock
  }

  /** A new stamp, greater than every stamp this clock made or observed. */
  now(): string {
    const wall = this.clock()
    if (wall > this.ms) {
      this.ms = wall
      this.counter = 0
    } else if (this.counter < MAX_COUNTER) {
      this.counter++
    } else {
      this.ms++
      this.counter = 0
    }
    // Most stamps of a burst share their millisecond: its digits are formatted once.
    if (this.msText === undefined || this.msTextOf !== this.ms) {
      this.msTextOf = this.ms
      this.msText = this.ms.toString(36).padStart(9, '0')
    }
    return `${this.msText}.${this.counter.toString(36).padStart(4, '0')}.${this.node}`
  }

  /** Move past a stamp seen from another device. False when it is ignored: not a stamp, or from too far ahead. */
  observe(stamp: string): boolean {
    const p = parseHlc(stamp)
    if (p === undefined || p.ms > this.clock() + MAX_DRIFT_MS) return false
    if (p.ms > this.ms || (p.ms === this.ms && p.counter > this.counter)) {
      this.ms = p.ms
      this.counter = p.counter
    }
    return true
  }

  /**
   * Move past every stamp of `stamps` (a merged update's thousands): as stamps sort like the
   * clock, observing the greatest is enough, unless it is one this clock ignores; then each.
   */
  observeAll(stamps: readonly string[]): void {
    let newest: string | undefined
    for (const s of stamps) if (newest === undefined || s > newest) newest = s
    if (newest === undefined || this.observe(newest)) return
    for (const s of stamps) this.observe(s)
  }
}

export function formatHlc(p: HlcParts): string {
  return `${p.ms.toString(36).padStart(9, '0')}.${p.counter.toString(36).padStart(4, '0')}.${p.node}`
}

export function parseHlc(stamp: unknown): HlcParts | undefined {
  if (typeof stamp !== 'string') return undefined
  const m = /^([0-9a-z]{9})\.([0-9a-z]{4})\.([A-Za-z0-9]{1,16})$/.exec(stamp)
  if (m === null) return undefined
  return { ms: parseInt(m[1] as string, 36), counter: parseInt(m[2] as string, 36), node: m[3] as string }
}

/** Wall-clock milliseconds of a stamp (0 if it is not one). */
export function hlcTime(stamp: string): number {
  return parseHlc(stamp)?.ms ?? 0
}

/** The node tag of a device id: its last 8 letters and digits. */
export function nodeTagOf(deviceId: string): string {
  const tag = deviceId.replace(/[^A-Za-z0-9]/g, '').slice(-8)
  return tag.length > 0 ? tag : 'anon'
}

/** A clock of its own, with a random node tag (a collection used without a device's clock: tests, tools). */
export function privateClock(): Hlc {
  return new Hlc(
    Math.random()
      .toString(36)
      .slice(2, 10)
      .replace(/[^a-z0-9]/g, '') || 'anon',
  )
}
