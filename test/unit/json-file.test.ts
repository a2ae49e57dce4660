import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readJsonFile, writeJsonFile } from '../../src/store/json-file.js'

const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

describe('writeJsonFile', () => {
  it('concurrent writes of one file all succeed and leave one of them whole, no temporary file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ks-json-'))
    dirs.push(dir)
    const file = join(dir, 'invites.json')
    const values = Array.from({ length: 16 }, (_, i) => ({ i, pad: 'x'.repeat(20_000 * (i + 1)) }))
    // Started in the same millisecond: they used to share a temporary file (ENOENT on rename).
    await Promise.all(values.map((v) => writeJsonFile(file, v)))
    const read = (await readJsonFile(file)) as { i: number; pad: string }
    expect(read).toEqual(values[read.i])
    expect((await readdir(dir)).filter((f) => f !== 'invites.json')).toEqual([])
  })
})
