/**
 * The port between the blind store's server and its storage: what the untrusted peer keeps
 * (opaque entries and at most one snapshot), and the operations the server needs on it. The
 * port belongs to its consumer (the server, in this layer); the LevelDB adapter that the VPS
 * runs is src/store/blind-store.ts, which is why `store/` sits above `blind/` in the layering
 * (as automerge-repo's storage adapters implement the repo's interface). MemoryBlindStorage
 * below is the in-memory implementation for unit tests and benchmarks of the logic.
 */

export interface BlindEntry {
  seq: number
  epoch: number
  ciphertext: Uint8Array
}

export interface BlindSnapshot {
  covers: number
  epoch: number
  ciphertext: Uint8Array
}

export interface BlindStoreState {
  /** Random id of this store; a device that knew another one starts again from zero. */
  storeId: string
  /** Seq of the newest entry (0: none yet). */
  head: number
  /** Seq the snapshot covers (0: no snapshot). */
  snapshotSeq: number
  /** Entries and ciphertext bytes added since the snapshot (devices decide when to compact). */
  sinceCount: number
  sinceBytes: number
}

/** What the server needs from storage (LevelDB on the VPS, a Map in tests). */
export interface BlindStorage {
  state(): BlindStoreState
  append(epoch: number, ciphertext: Uint8Array): Promise<number>
  snapshot(): Promise<BlindSnapshot | undefined>
  /** Entries with seq > `after`, in order. */
  entriesAfter(after: number): AsyncIterable<BlindEntry>
  /** Store the snapshot and delete every entry it covers, atomically. */
  replaceWithSnapshot(snapshot: BlindSnapshot): Promise<void>
}

/** Storage in memory (unit tests, benchmarks of the logic). */
export class MemoryBlindStorage implements BlindStorage {
  private readonly entries = new Map<number, BlindEntry>()
  private snap: BlindSnapshot | undefined
  private readonly s: BlindStoreState

  constructor(storeId = 'memory') {
    this.s = { storeId, head: 0, snapshotSeq: 0, sinceCount: 0, sinceBytes: 0 }
  }

  state(): BlindStoreState {
    return { ...this.s }
  }

  async append(epoch: number, ciphertext: Uint8Array): Promise<number> {
    const seq = ++this.s.head
    this.entries.set(seq, { seq, epoch, ciphertext })
    this.s.sinceCount++
    this.s.sinceBytes += ciphertext.byteLength
    return seq
  }

  async snapshot(): Promise<BlindSnapshot | undefined> {
    return this.snap
  }

  async *entriesAfter(after: number): AsyncIterable<BlindEntry> {
    for (const [seq, e] of [...this.entries].sort((a, b) => a[0] - b[0])) if (seq > after) yield e
  }

  async replaceWithSnapshot(snapshot: BlindSnapshot): Promise<void> {
    this.snap = snapshot
    let bytes = 0
    let count = 0
    for (const [seq, e] of [...this.entries]) {
      if (seq <= snapshot.covers) this.entries.delete(seq)
      else {
        count++
        bytes += e.ciphertext.byteLength
      }
    }
    this.s.snapshotSeq = snapshot.covers
    this.s.sinceCount = count
    this.s.sinceBytes = bytes
  }

  /** Entries held (for tests). */
  get size(): number {
    return this.entries.size
  }
}
