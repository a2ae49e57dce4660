import type { FileState } from './file-state.js'
import type { CapturedStates } from './incoming.js'

/**
 * What each file's document has captured: the disk state (size, hash, mode) its content was
 * read from, or written to, and the document's snapshot whose text the disk then held (the base
 * a later save is rebased from, core/folder-text-doc.ts). An incoming write expects the disk to still hold exactly that; the
 * watcher's own map says only what it last saw, which runs ahead of the document between a
 * change being seen and being captured, and must not be what a write trusts.
 */
export class CaptureLedger implements CapturedStates {
  private readonly states = new Map<string, FileState>()
  private readonly bases = new Map<string, Uint8Array>()

  /** `watcher`: the folder's watcher, so that the layer's own writes are not reported as local changes. */
  constructor(private readonly watcher?: Pick<CapturedStates, 'hold'>) {}

  captured(path: string): FileState | undefined {
    return this.states.get(path)
  }

  base(path: string): Uint8Array | undefined {
    return this.bases.get(path)
  }

  /** Every path with a captured state. */
  paths(): string[] {
    return [...this.states.keys()]
  }

  /**
   * The document holds what was read from (or written to) `path` in this state, as of the
   * snapshot `base` (undefined state: nothing there; undefined base: keep the one recorded).
   */
  record(path: string, state: FileState | undefined, base?: Uint8Array): void {
    if (state === undefined) {
      this.states.delete(path)
      this.bases.delete(path)
      return
    }
    this.states.set(path, state)
    if (base !== undefined) this.bases.set(path, base)
  }

  async hold<T extends { state: FileState | undefined; base?: Uint8Array }>(path: string, write: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const result = await write()
      this.record(path, result.state, result.base)
      return result
    }
    return this.watcher === undefined ? run() : this.watcher.hold(path, run)
  }
}
