import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { KitsyncError } from '../../src/core/errors.js'
import type { ConflictEvent } from '../../src/core/workspace-types.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { BinaryLevel } from '../../src/store/level.js'

/**
 * Each collection kind's merge rule under concurrent offline edits on two and three devices,
 * its limits and its refusals. Devices are LocalWorkspaces on memory-level whose documents are
 * exchanged by hand (the mesh itself is tested in e2e); every device has its own wall clock.
 */

type Device = { ws: LocalWorkspace; time: { now: number }; conflicts: ConflictEvent[] }
const open: LocalWorkspace[] = []

async function device(id: string, start = 1_800_000_000_000): Promise<Device> {
  const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' })
  const time = { now: start }
  const ws = await LocalWorkspace.fromDatabase(
    db as unknown as BinaryLevel,
    { home: '', deviceId: `12D3KooW${id}`, workspaceId: 'ws', name: 'n', version: '0' },
    { now: () => time.now },
  )
  open.push(ws)
  const conflicts: ConflictEvent[] = []
  ws.on('sync:conflict', (e) => conflicts.push(e))
  return { ws, time, conflicts }
}

afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

/** Exchange every collection between all devices until nothing changes (conflict settling writes too). */
async function sync(...devices: Device[]): Promise<void> {
  for (let round = 0; round < 5; round++) {
    for (const a of devices) {
      for (const b of devices) {
        if (a === b) continue
        for (const name of a.ws.collectionNames()) {
          const from = await a.ws.openDoc(name)
          const to = await b.ws.openDoc(name)
          Y.applyUpdate(to, Y.encodeStateAsUpdate(from, Y.encodeStateVector(to)), 'remote')
        }
      }
    }
    // Conflicts are settled in a microtask after the merge; let those writes happen.
    await new Promise((r) => setImmediate(r))
  }
  for (const d of devices) await d.ws.flush()
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code } as Partial<Record<keyof KitsyncError, unknown>>)
}

async function same(name: string, ...devices: Device[]): Promise<Record<string, unknown>> {
  const first = await devices[0]!.ws.getAll(name)
  for (const d of devices.slice(1)) expect(await d.ws.getAll(name)).toEqual(first)
  return first
}

describe('watchlists: sets of symbols', () => {
  it('merges adds and removes made offline on three devices', async () => {
    const [a, b, c] = await Promise.all([device('a'), device('b'), device('c')])
    await a.ws.set('watchlists', 'tech', { name: 'Tech', symbols: ['AAPL', 'MSFT'] })
    await sync(a, b, c)
    await a.ws.add('watchlists', 'tech', 'symbols', ['NVDA'])
    await b.ws.remove('watchlists', 'tech', 'symbols', ['AAPL'])
    await c.ws.set('watchlists', 'tech', { name: 'Tech', symbols: ['AAPL', 'MSFT', 'AMD'] })
    await sync(a, b, c)
    // B's remove of AAPL meets C's full write that still lists AAPL: C did not add it anew, so it stays removed.
    expect(await same('watchlists', a, b, c)).toEqual({ tech: { name: 'Tech', symbols: ['AMD', 'MSFT', 'NVDA'] } })
  })

  it('keeps a symbol added on one device while another removes it (add wins)', async () => {
    const [a, b] = await Promise.all([device('a'), device('b')])
    await a.ws.set('watchlists', 'w', { symbols: ['X'] })
    await sync(a, b)
    await a.ws.remove('watchlists', 'w', 'symbols', ['X'])
    await b.ws.remove('watchlists', 'w', 'symbols', ['X'])
    await b.ws.add('watchlists', 'w', 'symbols', ['X'])
    await sync(a, b)
    expect(await same('watchlists', a, b)).toEqual({ w: { symbols: ['X'] } })
  })

  it('refuses more than 1,000 symbols in a list and writes nothing; a workspace can raise the limit', async () => {
    const a = await device('a')
    const many = Array.from({ length: 1000 }, (_, i) => `S${i}`)
    await a.ws.set('watchlists', 'big', { symbols: many })
    await expectCode(a.ws.add('watchlists', 'big', 'symbols', ['ONE-MORE']), 'LIMIT_EXCEEDED')
    await expectCode(a.ws.set('watchlists', 'other', { symbols: [...many, 'X'] }), 'LIMIT_EXCEEDED')
    expect(((await a.ws.get('watchlists', 'big')) as { symbols: string[] }).symbols).toHaveLength(1000)
    expect(await a.ws.get('watchlists', 'other')).toBeUndefined()
    await a.ws.configure('watchlists', { limits: { maxSetSize: 1001 } })
    await a.ws.add('watchlists', 'big', 'symbols', ['ONE-MORE'])
    expect(((await a.ws.get('watchlists', 'big')) as { symbols: string[] }).symbols).toHaveLength(1001)
  })
})

describe('settings: field-level merge, latest write per field by clock', () => {
  it('follows wall-clock intent, not device ids or arrival order', async () => {
    const [a, b] = await Promise.all([device('zzz'), device('aaa')])
    await a.ws.set('settings', 'ui', { theme: 'light', font: 12 })
    await sync(a, b)
    // B changes the theme at 10:00:05, A at 10:00:01; A's write happens later in real time.
    b.time.now += 5000
    await b.ws.set('settings', 'ui', 'dark', { field: 'theme' })
    a.time.now += 1000
    await a.ws.set('settings', 'ui', 'solarized', { field: 'theme' })
    await a.ws.set('settings', 'ui', 14, { field: 'font' })
    await sync(a, b)
    expect(await same('settings', a, b)).toEqual({ ui: { theme: 'dark', font: 14 } })
    // The device that merges first settles the conflict; the other may receive it settled.
    expect(new Set([...a.conflicts, ...b.conflicts].map((c) => `${c.key}.${c.field}: ${c.resolution}`))).toEqual(new Set(['ui.theme: merged']))
    await sync(a, b)
    expect((await a.ws.log()).some((e) => e.type === 'conflict' && e.reason.includes('settings/ui.theme'))).toBe(true)
  })
})

describe('journal: append-only', () => {
  it('keeps every entry appended concurrently on three devices, in clock order', async () => {
    const [a, b, c] = await Promise.all([device('a', 1000), device('b', 2000), device('c', 3000)])
    const keys = [] as string[]
    for (const [d, text] of [
      [a, 'a1'],
      [b, 'b1'],
      [c, 'c1'],
      [a, 'a2'],
    ] as const)
      keys.push((await d.ws.append('journal', { text })).key)
    await sync(a, b, c)
    const all = await same('journal', a, b, c)
    expect(Object.values(all).map((e) => (e as { text: string }).text)).toEqual(['a1', 'a2', 'b1', 'c1'])
    expect(new Set(keys).size).toBe(4)
  })

  it('refuses to change or delete an entry', async () => {
    const a = await device('a')
    const { key } = await a.ws.append('journal', { text: 'bought' })
    await expectCode(a.ws.set('journal', key, { text: 'sold' }), 'APPEND_ONLY')
    await expectCode(a.ws.delete('journal', key), 'APPEND_ONLY')
    expect(await a.ws.get('journal', key)).toEqual({ text: 'bought' })
  })
})

describe('history: command history', () => {
  it('keeps one record per command and session across devices', async () => {
    const [a, b] = await Promise.all([device('a'), device('b')])
    const k1 = (await a.ws.append('history', { command: 'git status', session: 's1' })).key
    const k2 = (await b.ws.append('history', { command: 'git status ', session: 's1' })).key
    await a.ws.append('history', { command: 'git status', session: 's1' })
    const other = (await a.ws.append('history', { command: 'git status', session: 's2' })).key
    expect(k2).toBe(k1)
    expect(other).not.toBe(k1)
    await sync(a, b)
    const all = await same('history', a, b)
    expect(Object.keys(all).sort()).toEqual([k1, other].sort())
    expect(all[k1]).toMatchObject({ command: 'git status', session: 's1' })
  })

  it.each([
    ['mysql -u root -phunter2 shop', 'mysql-password'],
    ['export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123', 'secret-variable'],
    ['AWS_SECRET_ACCESS_KEY=abc123 aws s3 ls', 'secret-variable'],
    ['curl -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y" https://api', 'auth-header'],
    ['git clone https://bob:s3cret@example.com/r.git', 'url-credentials'],
    ['psql --password=letmein', 'password-option'],
    ['sshpass -p hunter2 ssh host', 'sshpass'],
    ['deploy --token abcdef123456', 'token-option'],
    ['echo sk-live_abcdefghijklmnopqrstuv', 'known-token-format'],
  ])('refuses %s (rule %s) and stores nothing', async (command, rule) => {
    const a = await device('a')
    await expect(a.ws.append('history', { command, session: 's' })).rejects.toMatchObject({ code: 'SECRET_REFUSED', details: { rule } })
    expect(a.ws.collectionNames()).not.toContain('history')
  })

  it('stores ordinary commands, and refuses more once the user adds a rule', async () => {
    const a = await device('a')
    for (const command of ['ls -la', 'git commit -m "fix password reset page"', 'ssh -i ~/.ssh/id_ed25519 host']) await a.ws.append('history', { command })
    expect(Object.keys(await a.ws.getAll('history'))).toHaveLength(3)
    await expectCode(a.ws.configure('history', { secretRules: [{ name: 'broken', pattern: '(' }] }), 'INVALID_ARGUMENT')
    await a.ws.configure('history', { secretRules: [{ name: 'vault', pattern: String.raw`\bvault (login|write)\b` }] })
    await expect(a.ws.append('history', { command: 'vault login s.abcdef' })).rejects.toMatchObject({ code: 'SECRET_REFUSED', details: { rule: 'vault' } })
    expect(Object.keys(await a.ws.getAll('history'))).toHaveLength(3)
  })
})

describe('ssh: profile metadata only', () => {
  const fingerprint = 'SHA256:' + 'A'.repeat(43)
  it('refuses private key material in any field, and secret-named fields', async () => {
    const a = await device('a')
    const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----'
    await expectCode(a.ws.set('ssh', 'web', { host: 'web.lan', notes: pem }), 'PRIVATE_KEY_REFUSED')
    await expectCode(a.ws.set('ssh', 'web', { host: 'web.lan', privateKey: 'anything' }), 'PRIVATE_KEY_REFUSED')
    await expectCode(a.ws.set('ssh', 'web', { host: 'web.lan', extra: { passphrase: 'x' } }), 'PRIVATE_KEY_REFUSED')
    await expectCode(a.ws.set('ssh', 'web', { host: 'web.lan', key: 'PuTTY-User-Key-File-3: ssh-ed25519' }), 'PRIVATE_KEY_REFUSED')
    expect(a.ws.collectionNames()).not.toContain('ssh')
    await expectCode(a.ws.set('ssh', 'web', { host: 'web.lan', port: 70000 }), 'INVALID_RECORD')
    await expectCode(a.ws.set('ssh', 'web', { host: 'web.lan', keyFingerprint: 'not-a-fingerprint' }), 'INVALID_RECORD')
    await a.ws.set('ssh', 'web', { host: 'web.lan', user: 'ops', keyFingerprint: fingerprint, tags: ['prod'] })
    expect(await a.ws.get('ssh', 'web')).toEqual({ host: 'web.lan', user: 'ops', keyFingerprint: fingerprint, tags: ['prod'], port: 22 })
  })

  it('merges concurrent tag and field edits', async () => {
    const [a, b] = await Promise.all([device('a'), device('b')])
    await a.ws.set('ssh-profiles', 'db', { host: 'db.lan', tags: ['prod'] })
    await sync(a, b)
    await a.ws.add('ssh-profiles', 'db', 'tags', ['eu'])
    await b.ws.add('ssh-profiles', 'db', 'tags', ['postgres'])
    await b.ws.set('ssh-profiles', 'db', 2222, { field: 'port' })
    await sync(a, b)
    expect(await same('ssh-profiles', a, b)).toEqual({ db: { host: 'db.lan', port: 2222, tags: ['eu', 'postgres', 'prod'] } })
  })
})

describe('issues', () => {
  it('merges fields by clock, keeps every tag and note, merges dependencies, on three devices', async () => {
    const [a, b, c] = await Promise.all([device('a'), device('b'), device('c')])
    await a.ws.set('issues', 'KIT-1', { title: 'Crash on start', status: 'open', tags: ['bug'], dependencies: ['KIT-0'] })
    await sync(a, b, c)
    a.time.now += 1000
    await a.ws.set('issues', 'KIT-1', 'in-progress', { field: 'status' })
    b.time.now += 2000
    await b.ws.set('issues', 'KIT-1', 'closed', { field: 'status' })
    await a.ws.add('issues', 'KIT-1', 'tags', ['p1'])
    await c.ws.add('issues', 'KIT-1', 'tags', ['ui'])
    await a.ws.append('issues', 'seen on linux', { key: 'KIT-1', field: 'notes' })
    c.time.now += 500
    await c.ws.append('issues', 'and on mac', { key: 'KIT-1', field: 'notes' })
    await b.ws.remove('issues', 'KIT-1', 'dependencies', ['KIT-0'])
    await c.ws.add('issues', 'KIT-1', 'dependencies', ['KIT-7'])
    await sync(a, b, c)
    expect(await same('issues', a, b, c)).toEqual({
      'KIT-1': { title: 'Crash on start', status: 'closed', tags: ['bug', 'p1', 'ui'], notes: ['and on mac', 'seen on linux'], dependencies: ['KIT-7'] },
    })
  })

  it('refuses to remove a tag or rewrite notes (append-only)', async () => {
    const a = await device('a')
    await a.ws.set('issues', 'KIT-2', { title: 't', tags: ['bug'], notes: ['first'] })
    await expectCode(a.ws.remove('issues', 'KIT-2', 'tags', ['bug']), 'APPEND_ONLY')
    await expectCode(a.ws.set('issues', 'KIT-2', { title: 't', tags: [] }), 'APPEND_ONLY')
    await expectCode(a.ws.set('issues', 'KIT-2', { title: 't', notes: ['changed'] }), 'APPEND_ONLY')
    await a.ws.set('issues', 'KIT-2', { title: 't2', tags: ['bug', 'ui'], notes: ['first', 'second'] })
    expect(await a.ws.get('issues', 'KIT-2')).toEqual({ title: 't2', tags: ['bug', 'ui'], notes: ['first', 'second'] })
  })
})

describe('alerts, templates, drawings, positions: latest version wins whole, with limits', () => {
  it('alerts: the later whole version wins, without mixing fields of the other', async () => {
    const [a, b] = await Promise.all([device('a'), device('b')])
    await a.ws.set('alerts', 'x', { symbol: 'AAPL', price: 100 })
    await sync(a, b)
    a.time.now += 1000
    await a.ws.set('alerts', 'x', { symbol: 'AAPL', price: 120, note: 'breakout' })
    b.time.now += 3000
    await b.ws.set('alerts', 'x', { symbol: 'AAPL', price: 90 })
    await sync(a, b)
    expect(await same('alerts', a, b)).toEqual({ x: { symbol: 'AAPL', price: 90 } })
    expect(new Set([...a.conflicts, ...b.conflicts].map((c) => `${c.key}: ${c.resolution}`))).toEqual(new Set(['x: latest']))
  })

  it.each([
    ['alerts', { symbol: 'AAPL', price: 1 }],
    ['templates', { layout: 'grid' }],
    ['drawings.AAPL-1D', { type: 'line' }],
    ['positions', { symbol: 'AAPL', quantity: 10 }],
  ] as const)('%s: of three concurrent offline versions the latest by clock wins whole, on all three devices', async (name, base) => {
    const [a, b, c] = await Promise.all([device('a'), device('b'), device('c')])
    await a.ws.set(name, 'k', { ...base })
    await sync(a, b, c)
    a.time.now += 3000
    await a.ws.set(name, 'k', { ...base, from: 'a', extra: true })
    b.time.now += 1000
    await b.ws.set(name, 'k', { ...base, from: 'b', other: 1 })
    c.time.now += 2000
    await c.ws.set(name, 'k', { ...base, from: 'c' })
    await c.ws.set(name, 'k2', { ...base })
    await sync(a, b, c)
    expect(await same(name, a, b, c)).toEqual({ k: { ...base, from: 'a', extra: true }, k2: { ...base } })
  })

  it('enforces 500 alerts, 50 templates, 100 drawings per chart; refuses and writes nothing', async () => {
    const a = await device('a')
    for (let i = 0; i < 500; i++) await a.ws.set('alerts', `a${i}`, { symbol: 'X', price: i })
    await expectCode(a.ws.set('alerts', 'one-more', { symbol: 'X' }), 'LIMIT_EXCEEDED')
    await a.ws.set('alerts', 'a0', { symbol: 'Y', price: 1 }) // changing an existing one is fine
    for (let i = 0; i < 50; i++) await a.ws.set('templates', `t${i}`, { layout: i })
    await expectCode(a.ws.set('templates', 't50', { layout: 50 }), 'LIMIT_EXCEEDED')
    for (let i = 0; i < 100; i++) await a.ws.set('drawings.AAPL-1D', `d${i}`, { type: 'line' })
    await expectCode(a.ws.set('drawings.AAPL-1D', 'd100', { type: 'line' }), 'LIMIT_EXCEEDED')
    await a.ws.set('drawings.MSFT-1D', 'd0', { type: 'line' }) // the limit is per chart
    expect((await a.ws.collection('drawings.AAPL-1D')).onDemand).toBe(true)
    expect(Object.keys(await a.ws.getAll('alerts'))).toHaveLength(500)
    expect(await a.ws.get('templates', 't50')).toBeUndefined()
    await expectCode(a.ws.set('alerts', 'bad', { price: 1 }), 'INVALID_RECORD')
    await expectCode(a.ws.set('positions', 'p', { symbol: 'AAPL' }), 'INVALID_RECORD')
  })
})

describe('conflict policies', () => {
  it('keep_both keeps the other version as a visible record on every device', async () => {
    const [a, b] = await Promise.all([device('a'), device('b')])
    await a.ws.configure('stories', { policy: 'keep_both' })
    await a.ws.set('stories', 'ch1', { text: 'draft' })
    await sync(a, b)
    a.time.now += 1000
    await a.ws.set('stories', 'ch1', { text: 'A version' })
    b.time.now += 2000
    await b.ws.set('stories', 'ch1', { text: 'B version' })
    await sync(a, b)
    const all = await same('stories', a, b)
    expect(all.ch1).toEqual({ text: 'B version' })
    const copies = Object.entries(all).filter(([k]) => k.startsWith('ch1~conflict-'))
    expect(copies.map(([, v]) => v)).toEqual([{ text: 'A version' }])
    expect(b.conflicts[0]?.resolution).toBe('kept-both')
  })

  it('ask records the conflict on every device; resolve settles it everywhere', async () => {
    const [a, b, c] = await Promise.all([device('a'), device('b'), device('c')])
    await a.ws.configure('alerts', { policy: 'ask' })
    await a.ws.set('alerts', 'x', { symbol: 'AAPL', price: 100 })
    await sync(a, b, c)
    a.time.now += 2000
    await a.ws.set('alerts', 'x', { symbol: 'AAPL', price: 150 })
    b.time.now += 1000
    await b.ws.set('alerts', 'x', { symbol: 'AAPL', price: 140 })
    await sync(a, b, c)
    const open = await c.ws.conflicts()
    expect(open).toHaveLength(1)
    expect(open[0]).toMatchObject({ collection: 'alerts', key: 'x' })
    expect(open[0]?.versions.map((v) => v.value)).toEqual([
      { symbol: 'AAPL', price: 150 },
      { symbol: 'AAPL', price: 140 },
    ])
    expect(await a.ws.conflicts('alerts')).toEqual(open)
    // Until someone decides, the latest version shows.
    expect(await c.ws.get('alerts', 'x')).toEqual({ symbol: 'AAPL', price: 150 })
    const bTag = open[0]!.versions[1]!.device
    await expectCode(c.ws.resolve('alerts', 'nope', { take: bTag }), 'UNKNOWN_CONFLICT')
    await c.ws.resolve('alerts', open[0]!.id, { take: bTag })
    await sync(a, b, c)
    for (const d of [a, b, c]) {
      expect(await d.ws.conflicts()).toEqual([])
      expect(await d.ws.get('alerts', 'x')).toEqual({ symbol: 'AAPL', price: 140 })
    }
    expect((await a.ws.list()).find((l) => l.name === 'alerts')?.openConflicts).toBeUndefined()
  })

  it('merge policy: concurrent edits of different fields both survive, without a conflict event', async () => {
    const [a, b] = await Promise.all([device('a'), device('b')])
    await a.ws.set('notes', 'n', { title: 't', body: 'b' })
    await sync(a, b)
    await a.ws.set('notes', 'n', 'T', { field: 'title' })
    await b.ws.set('notes', 'n', 'B', { field: 'body' })
    await sync(a, b)
    expect(await same('notes', a, b)).toEqual({ n: { title: 'T', body: 'B' } })
    expect([...a.conflicts, ...b.conflicts]).toEqual([])
  })

  it('a delete and a later edit: the edit wins by clock, on every device', async () => {
    const [a, b] = await Promise.all([device('a'), device('b')])
    await a.ws.set('notes', 'n', { title: 't', body: 'b' })
    await sync(a, b)
    a.time.now += 1000
    await a.ws.delete('notes', 'n')
    b.time.now += 2000
    await b.ws.set('notes', 'n', 'kept', { field: 'title' })
    await sync(a, b)
    expect(await same('notes', a, b)).toEqual({ n: { title: 'kept' } })
  })
})
