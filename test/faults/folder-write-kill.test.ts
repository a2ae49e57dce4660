/**
 * kill -9 of a process in the middle of writing a received file: the file on disk is always the
 * old content or the new, never a mix, and what the crash leaves (a temp file) is cleared at the
 * next start. A child writes 4 MiB files in a loop through folder/atomic-write.ts (from dist/:
 * run `npm run build` first, as `npm run test:faults` does); the parent kills it the moment a
 * temp file appears, that is, while a write is under way, and also reads the file all along.
 */
import { watch } from 'node:fs'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cleanup, makeTempDir, REPO_ROOT, spawnNode, STOP_TIMEOUT_MS } from '../helpers/cli.js'

afterAll(cleanup)

const SIZE = 4 * 1024 * 1024
const DEADLINE_MS = 20_000

const WRITER = `
import { writeFileAtomic } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'folder', 'atomic-write.js'))}
import { readDiskEntry } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'folder', 'file-state.js'))}
const [target, size] = [process.argv[2], Number(process.argv[3])]
for (let i = 0; ; i++) {
  const expected = await readDiskEntry(target, Number.MAX_SAFE_INTEGER)
  const letter = 66 + (i % 25) // B..Z; the first content is A
  const r = await writeFileAtomic(target, Buffer.alloc(size, letter), { expected, executable: false })
  if (r.status !== 'written') throw new Error('unexpected ' + r.status)
  process.stdout.write('wrote ' + String.fromCharCode(letter) + '\\n')
}
`

/** The letter the whole file is made of; fails if it is a mix or of the wrong size. */
function uniformLetter(buf: Buffer): string {
  expect(buf.byteLength).toBe(SIZE)
  const first = buf[0] as number
  expect(buf.equals(Buffer.alloc(SIZE, first))).toBe(true)
  return String.fromCharCode(first)
}

describe('kill -9 while writing a received file', () => {
  it.each([1, 2, 3, 5, 8])('killed during write number %i: old or new content, never a mix', async (killAt) => {
    const dir = await makeTempDir('ks-kill-')
    const target = join(dir, 'big.txt')
    await writeFile(target, Buffer.alloc(SIZE, 65))
    const script = join(dir, 'writer.mjs')
    await writeFile(script, WRITER)

    // Kill the moment the killAt-th temp file is created: the child is inside a write.
    let temps = 0
    const running: { child?: ReturnType<typeof spawnNode> } = {}
    const killed = new Promise<void>((resolve) => {
      const w = watch(dir, (_type, name) => {
        if (name === null || !name.toString().includes('.kitsync-tmp-')) return
        if (_type === 'rename' && ++temps === killAt * 2 - 1) {
          // Each temp file gives two 'rename' events (created, renamed away): odd ones are creations.
          running.child?.kill('SIGKILL')
          w.close()
          resolve()
        }
      })
    })
    const child = spawnNode(script, [target, String(SIZE)])
    running.child = child
    const reads: string[] = []
    const reader = (async () => {
      while (child.exitInfo === undefined) reads.push(uniformLetter(await readFile(target)))
    })()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      killed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no kill point within ${DEADLINE_MS} ms\n${child.transcript()}`)), DEADLINE_MS)
      }),
    ]).finally(() => clearTimeout(timer))
    const exit = await child.waitForExit(STOP_TIMEOUT_MS)
    expect(exit.signal).toBe('SIGKILL')
    await reader

    const written = child.lines.filter((l) => l.startsWith('wrote ')).map((l) => l.slice(6))
    const last = written.at(-1) ?? 'A'
    const next = String.fromCharCode(66 + (written.length % 25))
    const onDisk = uniformLetter(await readFile(target))
    expect([last, next]).toContain(onDisk)
    expect(reads.length).toBeGreaterThan(0)

    // What the crash left: at most the temp file, which the start-up sweep removes.
    const { removeTempFiles } = await import('../../src/folder/atomic-write.js')
    await removeTempFiles(dir)
    expect((await readdir(dir)).sort()).toEqual(['big.txt', 'writer.mjs'])
  })
})
