import { describe, expect, it } from 'vitest'
import { ProgressBar, renderProgress } from '../../src/cli/progress-bar.js'

describe('progress bar', () => {
  it('fills in proportion to done/total and names the bytes', () => {
    expect(renderProgress('copying', { done: 0, total: 8, bytes: 0 })).toBe(`copying [${'-'.repeat(24)}] 0/8 collections, 0 B`)
    expect(renderProgress('copying', { done: 3, total: 8, bytes: 2048 })).toBe(`copying [${'#'.repeat(9)}${'-'.repeat(15)}] 3/8 collections, 2.0 KiB`)
    expect(renderProgress('copying', { done: 8, total: 8, bytes: 3 * 1024 * 1024 })).toBe(`copying [${'#'.repeat(24)}] 8/8 collections, 3.0 MiB`)
  })

  it('redraws in place, covers a longer line drawn before, and ends the line once', () => {
    const out: string[] = []
    const bar = new ProgressBar((t) => out.push(t), 'copying')
    bar.update({ done: 1, total: 10, bytes: 1500 })
    bar.update({ done: 10, total: 10, bytes: 10 })
    bar.end()
    bar.end()
    expect(out[0]?.startsWith('\rcopying [')).toBe(true)
    expect(out[1]?.length).toBe(out[0]?.length) // "1.5 KiB" -> "10 B": padded over the old tail
    expect(out.slice(2)).toEqual(['\n'])
  })
})
