import { describe, expect, it } from 'vitest'
import type { RecordIndex } from '../../src/core/record-index.js'
import { collapsible, detect, resolve } from '../../src/core/record-resolve.js'
import { flatKey, HEADER, type FieldType, type RecordView, type Slot } from '../../src/core/record-slots.js'
import type { ConflictPolicy } from '../../src/core/workspace-types.js'

/**
 * The read rule on bare slots, with no Y.Doc: a plain Map stands for the collection's `records`
 * map. Stamps are plain strings here; the rule only compares them.
 */

/** The slots of record `k`, given as `field -> slot name -> slot`, and its index. */
function record(
  slots: Record<string, Record<string, Slot>>,
  policy: ConflictPolicy = 'merge',
  fieldTypes: Record<string, FieldType> = {},
): { view: RecordView; rec: RecordIndex } {
  const map = new Map<string, Slot>()
  const rec: RecordIndex = new Map()
  for (const [field, named] of Object.entries(slots)) {
    rec.set(field, new Set(Object.keys(named)))
    for (const [slot, value] of Object.entries(named)) map.set(flatKey('k', field, slot), value)
  }
  return { view: { slots: map, policy, fieldTypes }, rec }
}

describe('record read rule (record-resolve)', () => {
  it('hides a field older than the last whole write only under a record-level policy', () => {
    const slots = { [HEADER]: { '=a': { t: 't2', f: 1, r: { x: 1 } } }, y: { '=b': { t: 't1', v: 2 } } } as const
    const merge = record(slots, 'merge')
    expect(resolve(merge.view, 'k', merge.rec)).toEqual({ x: 1, y: 2 })
    const latest = record(slots, 'latest_wins')
    expect(resolve(latest.view, 'k', latest.rec)).toEqual({ x: 1 })
  })

  it('hides set elements older than the last delete, and a later add brings the record back', () => {
    const { view, rec } = record({ [HEADER]: { '=a': { t: 't3', d: 1 } }, tags: { '+p': { t: 't2' }, '+q': { t: 't4' } } }, 'merge', { tags: 'set' })
    expect(resolve(view, 'k', rec)).toEqual({ tags: ['q'] })
    const gone = record({ [HEADER]: { '=a': { t: 't3', d: 1 } }, tags: { '+p': { t: 't2' } } }, 'merge', { tags: 'set' })
    expect(resolve(gone.view, 'k', gone.rec)).toBeUndefined()
  })

  it('finds no conflict with a value its writer saw and wrote over; finds one between unseen writes', () => {
    const added = flatKey('k', 'x', '=b')
    const seen = record({ [HEADER]: { '=a': { t: 't0' } }, x: { '=a': { t: 't1', v: 1 }, '=b': { t: 't2', b: 't1', v: 2 } } })
    expect(detect(seen.view, 'k', seen.rec, added)).toBeUndefined()
    const unseen = record({ [HEADER]: { '=a': { t: 't0' } }, x: { '=a': { t: 't1', v: 1 }, '=b': { t: 't2', v: 2 } } })
    expect(detect(unseen.view, 'k', unseen.rec, added)).toEqual({
      key: 'k',
      field: 'x',
      versions: [
        { device: 'b', hlc: 't2', value: 2 },
        { device: 'a', hlc: 't1', value: 1 },
      ],
      winner: { device: 'b', hlc: 't2', value: 2 },
    })
  })

  it('collapses the losing value of a field and keeps the winner and the header', () => {
    const { view, rec } = record({ [HEADER]: { '=a': { t: 't0' } }, x: { '=a': { t: 't1', v: 1 }, '=b': { t: 't2', v: 2 } } })
    expect(collapsible(view, 'k', rec)).toEqual([flatKey('k', 'x', '=a')])
  })
})
