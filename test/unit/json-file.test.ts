import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readJsonFile, writeJsonFile } from '../../src/store/json-file.js'
import { WorkspaceKeys } from '../../src/store/key-file.js'

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

describe('WorkspaceKeys', () => {
  it('concurrent changes all land: keys merged at once and a rotation are all in the ring and the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ks-keys-'))
    dirs.push(dir)
    const file = join(dir, 'keys.json')
    const keys = await WorkspaceKeys.load(file)
    await Promise.all([keys.ensure(), keys.ensure()])
    expect(keys.epoch).toBe(1)
    const hex = (c: string): string => c.repeat(64)
    // Each merge read the ring before the other wrote it: one of them used to be lost.
    await Promise.all([keys.merge({ '2': hex('a') }), keys.merge({ '3': hex('b') }), keys.rotate()])
    expect(keys.epoch).toBe(4)
    expect(Object.keys(keys.export()).sort()).toEqual(['1', '2', '3', '4'])
    const again = await WorkspaceKeys.load(file)
    expect(again.export()).toEqual(keys.export())
    expect(again.epoch).toBe(4)
  })
})
