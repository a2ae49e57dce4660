import type * as Y from 'yjs'
import { debugLog } from '../core/debug-log.js'
import type { DocStore } from '../store/doc-store.js'
import { PendingLedger } from '../sync/pending-ledger.js'

/**
 * This device's writes made while no peer runs (`kitsync set` without a peer, an app that opens
 * the workspace itself): counted in the saved pending ledger as the running peer's engine counts
 * them (SyncEngine.track), so `status` shows them pending for every device and the next peer
 * start continues from them.
 *
 * The first write of a document's client is acknowledged only once that client is saved, with
 * the ledger mark that makes the next start recount from the store (see LEDGER_RUNNING_KEY): a
 * kill -9 loses no acknowledged write from the count. The clocks are saved again at close.
 */

const log = debugLog('daemon:sync')

export interface OfflineWritesStore {
  /** The workspace's store (read when needed: the workspace sets it after this is made). */
  store(): DocStore
  /** Whether a peer runs in this process (its engine counts the writes then). */
  running(): boolean
  ownKey: string
  markKey: string
}

export class OfflineWrites {
  /** What this process wrote with no peer running, as the ledger's own part (never cleared: saves are idempotent). */
  private readonly counted = new PendingLedger()
  private saving: Promise<void> = Promise.resolve()
  private saved = true
  /** Whether this process set the ledger mark (and so clears it at a clean close). */
  private marked = false

  /** The save of a client not saved before, while it runs: the write that brought it waits for it. */
  private clientSave: Promise<void> | undefined

  constructor(private readonly host: OfflineWritesStore) {
    this.counted.onNewClient = () => {
      const saving = this.save().then(() => {
        if (this.clientSave === saving) this.clientSave = undefined
      })
      this.clientSave = saving
    }
  }

  /**
   * For the write path, after a write's transaction: the save its acknowledgement must wait
   * for (its client was not saved yet), else undefined. A kill -9 after the acknowledgement
   * then finds the client saved and the mark set, and the count is recounted from the store.
   */
  unsettled(): Promise<void> | undefined {
    return this.clientSave
  }

  /** Count the local writes to a loaded document (called for every load). */
  watch(name: string, doc: Y.Doc): void {
    doc.on('update', (_update: Uint8Array, _origin: unknown, d: Y.Doc, tr: Y.Transaction) => {
      if (!tr.local || this.host.running()) return
      const clock = tr.afterState.get(d.clientID) ?? 0
      if (clock <= (tr.beforeState.get(d.clientID) ?? 0)) return
      this.saved = false
      this.counted.localWrite(name, d.clientID, clock)
    })
  }

  /** Add what was counted here to a ledger (the running peer's at its start, or one read for status). */
  addTo(ledger: PendingLedger): void {
    const own = this.counted.ownSnapshot()
    for (const [collection, clocks] of Object.entries(own)) for (const [client, clock] of clocks) ledger.localWrite(collection, client, clock)
  }

  /** Save the counts into the stored ledger (at a new client, and when the workspace closes). */
  save(): Promise<void> {
    this.saving = this.saving.then(() => this.write()).catch((err: unknown) => log('cannot save the pending count of writes made without a peer', err))
    return this.saving
  }

  /** The last save, and the mark cleared if this process set it. */
  async close(): Promise<void> {
    await this.save()
    if (!this.marked) return
    await this.host
      .store()
      .putLocal(this.host.markKey, null)
      .catch((err: unknown) => log('cannot clear the ledger mark', err))
    this.marked = false
  }

  private async write(): Promise<void> {
    if (this.saved || this.host.running()) return
    this.saved = true
    const store = this.host.store()
    if (!this.marked && ((await store.getLocal(this.host.markKey)) ?? null) === null) {
      await store.putLocal(this.host.markKey, { since: Date.now(), offline: true })
      this.marked = true
    }
    const ledger = new PendingLedger()
    ledger.restore(await store.getLocal(this.host.ownKey), {})
    this.addTo(ledger)
    await store.putLocal(this.host.ownKey, ledger.ownSnapshot())
  }
}
