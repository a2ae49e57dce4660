import { statSync } from 'node:fs'
import { join } from 'node:path'
import { expect } from 'vitest'
import type { JsonValue } from '../../dist/index.js'
import { FIXTURES, spawnNode, START_TIMEOUT_MS, STOP_TIMEOUT_MS, waitUntil } from './cli.js'

/**
 * Run the writer fixture (test/fixtures/writer.mjs: `concurrency` writers in one process, no
 * pause) in `home` and kill -9 it once store.wal holds `walBytes`, so its last updates are not
 * in LevelDB yet. (On a loaded machine the file may have been emptied before, when every update
 * in it had reached LevelDB: its first updates can build on ones only LevelDB holds.) Returns the
 * acknowledged records, in the order they were acknowledged, and the last key.
 */
export async function writeUntilWalHolds(
  home: string,
  collection: string,
  concurrency: number,
  walBytes: number,
): Promise<{ acknowledged: Map<string, JsonValue>; lastKey: string }> {
  const walPath = join(home, 'store.wal')
  const writer = spawnNode(join(FIXTURES, 'writer.mjs'), [home, collection, 'w', String(concurrency)])
  await writer.waitForLine((l) => l.startsWith('{"ready":true'), START_TIMEOUT_MS, 'the ready line')
  await waitUntil(
    async () => {
      if (writer.exitInfo !== undefined) throw new Error(`the writer exited\n${writer.transcript().slice(0, 2000)}`)
      if ((statSync(walPath, { throwIfNoEntry: false })?.size ?? 0) < walBytes) return undefined
      // In the same turn as the check: the file cannot be emptied in between.
      writer.kill('SIGKILL')
      return true
    },
    60_000,
    `store.wal holding ${walBytes} bytes`,
  )
  expect(await writer.waitForExit(STOP_TIMEOUT_MS)).toEqual({ code: null, signal: 'SIGKILL' })
  const acknowledged = new Map<string, JsonValue>()
  let lastKey = ''
  for (const line of writer.lines.slice(1)) {
    const { key, value } = JSON.parse(line) as { key: string; value: JsonValue }
    acknowledged.set(key, value)
    lastKey = key
  }
  return { acknowledged, lastKey }
}
