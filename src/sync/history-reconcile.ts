import { FINGERPRINT_BYTES, RangeMode, type HistoryRange } from '../protocol/history-frames.js'

/**
 * Range-based set reconciliation of history items (`KEY\0STAMP`, protocol/history-frames.ts), as
 * negentropy and iroh-docs do it: a range whose fingerprints agree is done; one that differs is
 * answered with the item list when this side holds few items in it, else split in BRANCH
 * sub-ranges of about equal count, each with its fingerprint. Pure: no I/O, no state between
 * messages beyond the set itself.
 *
 * A fingerprint is the count of a range's items and the per-lane sum (mod 2^32) of four 32-bit
 * hashes (murmur3 of the item's UTF-8 bytes, seeds 1-4) of each: sums of prefixes make any
 * range's fingerprint O(1) once the set is built.
 */

export const BRANCH = 16
/** A side holding at most this many items of a differing range lists them instead of splitting it. */
export const ID_LIST_MAX = 32

const LANES = FINGERPRINT_BYTES / 4
const WIDE = /[\ud800-\uffff]/
const utf8 = new TextEncoder()

/** A sorted, duplicate-free set of items with prefix sums of their hashes. */
export class HistorySet {
  readonly ids: readonly string[]
  private readonly sums: Uint32Array

  constructor(items: Iterable<string>) {
    // A store lists its items in byte order already: sorted again only when they are not.
    const ids = [...items]
    let sorted = true
    for (let i = 1; i < ids.length && sorted; i++) sorted = compareItems(ids[i - 1] as string, ids[i] as string) < 0
    // UTF-16 order is code point order unless a string holds a surrogate or a unit from U+E000 on.
    this.ids = sorted ? ids : ids.some((id) => WIDE.test(id)) ? [...new Set(ids)].sort(compareItems) : [...new Set(ids)].sort()
    this.sums = new Uint32Array((this.ids.length + 1) * LANES)
    const lanes = new Uint32Array(LANES)
    for (let i = 0; i < this.ids.length; i++) {
      hashItem(this.ids[i] as string, lanes)
      for (let l = 0; l < LANES; l++) this.sums[(i + 1) * LANES + l] = ((this.sums[i * LANES + l] as number) + (lanes[l] as number)) >>> 0
    }
  }

  get size(): number {
    return this.ids.length
  }

  has(id: string): boolean {
    const i = this.indexOf(id)
    return this.ids[i] === id
  }

  /** The index of the first item at or above `bound` (undefined: the end). */
  indexOf(bound: string | undefined): number {
    if (bound === undefined) return this.ids.length
    let lo = 0
    let hi = this.ids.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareItems(this.ids[mid] as string, bound) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** The fingerprint of items [lo, hi). */
  fingerprint(lo: number, hi: number): Uint8Array {
    const out = new Uint8Array(FINGERPRINT_BYTES)
    const view = new DataView(out.buffer)
    for (let l = 0; l < LANES; l++) view.setUint32(l * 4, ((this.sums[hi * LANES + l] as number) - (this.sums[lo * LANES + l] as number)) >>> 0)
    return out
  }
}

/** What a side does with the peer's ranges: ranges to send back, items to send, items to ask for. */
export interface ReconcileStep {
  lower: string
  ranges: HistoryRange[]
  push: string[]
  want: string[]
}

/** The opening message: the whole item space as one fingerprint. */
export function openingRanges(set: HistorySet): HistoryRange[] {
  return [{ mode: RangeMode.FINGERPRINT, upper: undefined, count: set.size, fingerprint: set.fingerprint(0, set.size) }]
}

/** Answer the peer's ranges (from `lower` on) with this side's set. */
export function reconcile(set: HistorySet, lower: string, ranges: readonly HistoryRange[]): ReconcileStep {
  const out: HistoryRange[] = []
  const push: string[] = []
  const want: string[] = []
  let from = lower
  for (const range of ranges) {
    const lo = set.indexOf(from)
    const hi = Math.max(lo, set.indexOf(range.upper))
    if (range.upper !== undefined && compareItems(range.upper, from) <= 0) break // out of order: nothing past it is trusted
    if (range.mode === RangeMode.FINGERPRINT) {
      const mine = hi - lo
      if (mine === range.count && equalBytes(set.fingerprint(lo, hi), range.fingerprint)) out.push({ mode: RangeMode.SKIP, upper: range.upper })
      else if (range.count === 0) {
        // The peer has none of it: everything of ours in it goes.
        for (let i = lo; i < hi; i++) push.push(set.ids[i] as string)
        out.push({ mode: RangeMode.SKIP, upper: range.upper })
      } else if (mine <= ID_LIST_MAX) out.push({ mode: RangeMode.IDS, upper: range.upper, ids: set.ids.slice(lo, hi) })
      else split(set, lo, hi, range.upper, out)
    } else if (range.mode === RangeMode.IDS) {
      const theirs = new Set<string>()
      for (const id of range.ids) {
        if (compareItems(id, from) < 0 || (range.upper !== undefined && compareItems(id, range.upper) >= 0)) continue
        theirs.add(id)
        if (!set.has(id)) want.push(id)
      }
      for (let i = lo; i < hi; i++) if (!theirs.has(set.ids[i] as string)) push.push(set.ids[i] as string)
      out.push({ mode: RangeMode.SKIP, upper: range.upper })
    } else out.push({ mode: RangeMode.SKIP, upper: range.upper })
    if (range.upper === undefined) break
    from = range.upper
  }
  return { ...trim(lower, out), push, want }
}

/** BRANCH sub-ranges of items [lo, hi), each bounded by the shortest prefix that separates it from the one before. */
function split(set: HistorySet, lo: number, hi: number, upper: string | undefined, out: HistoryRange[]): void {
  let start = lo
  for (let k = 1; k <= BRANCH; k++) {
    const end = k === BRANCH ? hi : lo + Math.floor(((hi - lo) * k) / BRANCH)
    if (end <= start && k < BRANCH) continue
    const bound = k === BRANCH ? upper : separator(set.ids[end - 1] as string, set.ids[end] as string)
    out.push({ mode: RangeMode.FINGERPRINT, upper: bound, count: end - start, fingerprint: set.fingerprint(start, end) })
    start = end
  }
}

/** Merge neighbouring SKIPs, drop leading ones (moving `lower`) and trailing ones. */
function trim(lower: string, ranges: HistoryRange[]): { lower: string; ranges: HistoryRange[] } {
  const merged: HistoryRange[] = []
  for (const r of ranges) {
    const last = merged[merged.length - 1]
    if (r.mode === RangeMode.SKIP && last?.mode === RangeMode.SKIP) last.upper = r.upper
    else merged.push(r)
  }
  while (merged[merged.length - 1]?.mode === RangeMode.SKIP) merged.pop()
  let from = lower
  while (merged[0]?.mode === RangeMode.SKIP) from = (merged.shift() as HistoryRange).upper as string
  return { lower: from, ranges: merged }
}

/** The shortest prefix of `b` above `a` (a < b): the bound between them. A surrogate pair is not cut. */
export function separator(a: string, b: string): string {
  let i = 0
  while (i < a.length && a.charCodeAt(i) === b.charCodeAt(i)) i++
  let end = i + 1
  const last = b.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff && end < b.length) end++
  return b.slice(0, end)
}

/** Order of items: by UTF-8 bytes, which is the order of code points (not of UTF-16 units). */
export function compareItems(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return codePointRank(x) - codePointRank(y)
  }
  return a.length - b.length
}

/** Surrogates (code points above U+FFFF) sort after U+E000-U+FFFF in UTF-8. */
function codePointRank(unit: number): number {
  return unit >= 0xe000 ? unit - 0x800 : unit >= 0xd800 ? unit + 0x2000 : unit
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

const scratch = new Uint8Array(4096)

/** The LANES hashes of an item: murmur3 of its UTF-8 bytes with seeds 1..LANES. */
function hashItem(id: string, out: Uint32Array): void {
  let bytes = scratch
  let n: number
  if (id.length * 3 <= scratch.length) n = utf8.encodeInto(id, scratch).written
  else n = (bytes = utf8.encode(id)).length
  murmur3Lanes(bytes, n, out)
}

/** MurmurHash3 (x86, 32 bits) of bytes[0, n) with seeds seed..seed + out.length - 1 at once (a block's mix does not depend on the seed). */
function murmur3Lanes(bytes: Uint8Array, n: number, out: Uint32Array, seed = 1): void {
  const lanes = out.length
  for (let l = 0; l < lanes; l++) out[l] = seed + l
  const blocks = n & ~3
  for (let i = 0; i < blocks; i += 4) {
    let k = (bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    for (let l = 0; l < lanes; l++) {
      let h = (out[l] as number) ^ k
      h = (h << 13) | (h >>> 19)
      out[l] = (Math.imul(h, 5) + 0xe6546b64) | 0
    }
  }
  const rest = n & 3
  let k = 0
  if (rest > 0) {
    k = bytes[blocks] as number
    if (rest > 1) k ^= (bytes[blocks + 1] as number) << 8
    if (rest > 2) k ^= (bytes[blocks + 2] as number) << 16
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
  }
  for (let l = 0; l < lanes; l++) {
    let h = (out[l] as number) ^ k ^ n
    h ^= h >>> 16
    h = Math.imul(h, 0x85ebca6b)
    h ^= h >>> 13
    h = Math.imul(h, 0xc2b2ae35)
    h ^= h >>> 16
    out[l] = h >>> 0
  }
}

/** MurmurHash3 (x86, 32 bits). */
export function murmur3(bytes: Uint8Array, seed: number): number {
  const out = new Uint32Array(1)
  murmur3Lanes(bytes, bytes.length, out, seed)
  return out[0] as number
}
