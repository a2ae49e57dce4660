import { describe, expect, it } from 'vitest'
import { formatStats } from '../../src/cli/commands/stats.js'
import { SyncStats } from '../../src/sync/sync-stats.js'

describe('kitsync stats, as a person reads it', () => {
  it('counts updates in (applied) and out (sent) per device and collection, under their own headers', () => {
    let now = 1_765_000_000_000
    const stats = new SyncStats(() => now)
    stats.applied('12D3KooWpeerAAAAAAAA', 'notes')
    for (let i = 0; i < 3; i++) stats.sent('12D3KooWpeerAAAAAAAA', 'notes')
    now += 1000
    const text = formatStats({ ...stats.snapshot(), live: true, names: { '12D3KooWpeerAAAAAAAA': 'laptop' } })
    const lines = text.split('\n')
    const header = lines.find((l) => l.startsWith('DEVICE')) ?? ''
    const row = lines.find((l) => l.startsWith('laptop')) ?? ''
    expect(header).toMatch(/BYTES OUT +UPD IN +UPD OUT +CONFLICTS/)
    // The figures sit under their headers (right-aligned to the header's end).
    const under = (title: string): string =>
      row
        .slice(0, header.indexOf(title) + title.length)
        .trimEnd()
        .split(/\s+/)
        .at(-1) ?? ''
    expect(under('UPD IN')).toBe('1')
    expect(under('UPD OUT')).toBe('3')
    expect(stats.snapshot().totals).toMatchObject({ updatesApplied: 1, updatesSent: 3 })
    expect(stats.snapshot().collections.notes).toMatchObject({ updatesApplied: 1, updatesSent: 3 })
  })
})
