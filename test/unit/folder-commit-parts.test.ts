import { describe, expect, it } from 'vitest'
import { commitParts } from '../../dist/daemon/folder-commit-parts.js'

/** A folder job's updates and records cut into commits (daemon/folder-commit-parts.ts). */

const up = (unit: string, bytes: number): { unit: string; update: Uint8Array } => ({ unit, update: new Uint8Array(bytes) })
const rec = (key: string): { key: string; fields: Record<string, string> } => ({ key, fields: { path: `${key}.txt` } })

describe('commitParts', () => {
  it('keeps each record with its unit updates, in order, within the byte and record budgets', () => {
    const updates = [up('a', 40), up('b', 40), up('a', 30), up('c', 40), up('d', 10)]
    const records = [rec('a'), rec('b'), rec('c'), rec('x'), rec('y')]
    const parts = commitParts(updates, records, 100, 3)
    // a (70 bytes), then b would pass 100: a new part; c fits; x is a third record: next part.
    expect(parts.map((p) => p.records.map((r) => r.key))).toEqual([['a'], ['b', 'c', 'x'], ['y']])
    expect(parts.map((p) => p.updates.map((u) => `${u.unit}${u.update.byteLength}`))).toEqual([['a40', 'a30'], ['b40', 'c40'], ['d10']])
    // Nothing lost or repeated.
    expect(parts.flatMap((p) => p.updates)).toHaveLength(updates.length)
    expect(parts.flatMap((p) => p.records)).toHaveLength(records.length)
  })

  it('one part for a small job, none for an empty one', () => {
    expect(commitParts([up('a', 5)], [rec('a'), rec('b')])).toEqual([{ updates: [up('a', 5)], records: [rec('a'), rec('b')] }])
    expect(commitParts([], [])).toEqual([])
  })
})
