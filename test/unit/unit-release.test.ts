import { afterEach, describe, expect, it, vi } from 'vitest'
import * as Y from 'yjs'
import { newTextFileDoc, TEXT_NAME } from '../../src/core/folder-text-doc.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import { setMemoryRelease } from '../../src/daemon/memory-release.js'
import { RELEASE_EVERY_WRITES } from '../../src/daemon/workspace-units.js'
import { cleanup, makeHome } from '../helpers/cli.js'

/**
 * A long burst of unit writes (a peer receiving a folder's units as they are captured) runs a
 * full collection every RELEASE_EVERY_WRITES writes, not only once the writes stop: the
 * updates' buffers are freed while the burst goes on. Real LevelDB; the quiet-moment timer is
 * faked and never fires here, so only the periodic release can be counted.
 */

afterEach(async () => {
  vi.useRealTimers()
  setMemoryRelease(undefined)
  await cleanup()
})

const C = '_folder.docs'

function textUpdate(text: string): Uint8Array {
  const doc = newTextFileDoc()
  doc.getText(TEXT_NAME).insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

describe('memory release during a burst of unit writes', () => {
  it('releases every RELEASE_EVERY_WRITES writes without a quiet moment', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    let released = 0
    setMemoryRelease(() => void released++)
    const ws = await LocalWorkspace.open({ home: await makeHome() })
    try {
      const total = RELEASE_EVERY_WRITES * 2 + 100
      let at2000 = -1
      for (let i = 0; i < total; i += 100) {
        const updates = Array.from({ length: 100 }, (_, k) => ({ unit: `u${String(i + k).padStart(5, '0')}`, update: textUpdate(`file ${i + k}\n`) }))
        await ws.units.commit(C, updates)
        await new Promise((r) => setImmediate(r))
        if (i + 100 === RELEASE_EVERY_WRITES) at2000 = released
      }
      expect(at2000).toBe(1)
      expect(released).toBe(2)
    } finally {
      vi.useRealTimers()
      await ws.close()
    }
  })
})
