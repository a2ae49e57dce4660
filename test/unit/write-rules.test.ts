import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { isKitsyncError } from '../../src/core/errors.js'
import { Hlc } from '../../src/core/hlc.js'
import { effectiveSettings, type CollectionSettings } from '../../src/core/kinds.js'
import { RecordCollection, type RecordChange } from '../../src/core/record-collection.js'
import { addToSet, appendRecord, checkLimits, deleteRecord, setField, setRecord } from '../../src/core/write-rules.js'

/** The write rules on a bare RecordCollection: no workspace, no store, no write queue. */

const ORIGIN = Symbol('test')
const NOW = 1_700_000_000_000

function bare(settings: CollectionSettings, name = 'c'): { c: RecordCollection; rules: ReturnType<typeof effectiveSettings>; changes: RecordChange[] } {
  const rules = effectiveSettings(settings)
  const c = new RecordCollection(name, new Y.Doc(), { clock: new Hlc('node1', () => NOW), policy: rules.policy, fieldTypes: { ...rules.kind.fieldTypes } })
  const changes: RecordChange[] = []
  c.onChange((batch) => changes.push(...batch))
  return { c, rules, changes }
}

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (isKitsyncError(err)) return err.code
    throw err
  }
  return undefined
}

describe('write rules (core/write-rules)', () => {
  it('setRecord stores what the kind made of the value, under the given origin', () => {
    const { c, rules, changes } = bare({ kind: 'ssh' })
    setRecord(c, rules, 'box', { host: 'example.org' }, ORIGIN, NOW)
    expect(c.get('box')).toEqual({ host: 'example.org', port: 22 })
    expect(changes.map((ch) => [ch.key, ch.origin])).toEqual([['box', ORIGIN]])
    expect(code(() => setRecord(c, rules, 'bad', { host: 'h', port: 70000 }, ORIGIN, NOW))).toBe('INVALID_RECORD')
    expect(c.has('bad')).toBe(false)
  })

  it('setField checks the record as the field leaves it and writes only that field', () => {
    const { c, rules } = bare({ kind: 'ssh' })
    setRecord(c, rules, 'box', { host: 'example.org', user: 'ann' }, ORIGIN, NOW)
    setField(c, rules, 'box', 'user', 'bob', ORIGIN, NOW)
    expect(c.get('box')).toEqual({ host: 'example.org', port: 22, user: 'bob' })
    // The port alone is fine as a number; the record it leaves is not.
    expect(code(() => setField(c, rules, 'box', 'port', 0, ORIGIN, NOW))).toBe('INVALID_RECORD')
    expect(c.get('box')).toEqual({ host: 'example.org', port: 22, user: 'bob' })
    // What is stored is the field as the kind normalised it.
    const history = bare({ kind: 'history' })
    setRecord(history.c, history.rules, 'h', { command: 'ls' }, ORIGIN, NOW)
    setField(history.c, history.rules, 'h', 'command', '  pwd  ', ORIGIN, NOW)
    expect(history.c.get('h')).toEqual({ command: 'pwd', session: 'default' })
  })

  it('an append-only kind refuses to change or delete a record that exists, not to write a new one', () => {
    const { c, rules } = bare({ kind: 'journal' })
    setRecord(c, rules, 'e1', { text: 'first' }, ORIGIN, NOW)
    expect(code(() => setRecord(c, rules, 'e1', { text: 'changed' }, ORIGIN, NOW))).toBe('APPEND_ONLY')
    expect(code(() => setField(c, rules, 'e1', 'text', 'changed', ORIGIN, NOW))).toBe('APPEND_ONLY')
    expect(code(() => deleteRecord(c, rules, 'e1', ORIGIN))).toBe('APPEND_ONLY')
    expect(c.get('e1')).toEqual({ text: 'first' })
    expect(deleteRecord(c, rules, 'none', ORIGIN)).toBe(false)
    const generic = bare({ kind: 'generic' })
    setRecord(generic.c, generic.rules, 'k', 1, ORIGIN, NOW)
    expect(deleteRecord(generic.c, generic.rules, 'k', ORIGIN)).toBe(true)
    expect(generic.c.has('k')).toBe(false)
  })

  it('maxRecords refuses a new record past the limit but lets an existing one change', () => {
    const { c, rules } = bare({ kind: 'generic', limits: { maxRecords: 2 } })
    setRecord(c, rules, 'a', 1, ORIGIN, NOW)
    setRecord(c, rules, 'b', 2, ORIGIN, NOW)
    expect(code(() => setRecord(c, rules, 'c', 3, ORIGIN, NOW))).toBe('LIMIT_EXCEEDED')
    expect(code(() => appendRecord(c, rules, 4, {}, ORIGIN, NOW))).toBe('LIMIT_EXCEEDED')
    setRecord(c, rules, 'a', 10, ORIGIN, NOW)
    expect(c.entries()).toEqual({ a: 10, b: 2 })
  })

  it('maxSetSize counts distinct elements, in a whole write and in an add', () => {
    const { c, rules } = bare({ kind: 'watchlists', limits: { maxSetSize: 2 } })
    setRecord(c, rules, 'w', { symbols: ['A', 'A', 'B'] }, ORIGIN, NOW)
    expect(code(() => setRecord(c, rules, 'x', { symbols: ['A', 'B', 'C'] }, ORIGIN, NOW))).toBe('LIMIT_EXCEEDED')
    expect(code(() => checkLimits(c, rules, 'x', { symbols: ['A', 'B', 'C'] }))).toBe('LIMIT_EXCEEDED')
    addToSet(c, rules, 'w', 'symbols', ['B'], ORIGIN)
    expect(code(() => addToSet(c, rules, 'w', 'symbols', ['C'], ORIGIN))).toBe('LIMIT_EXCEEDED')
    expect(code(() => addToSet(c, rules, 'new', 'symbols', ['A', 'B', 'C'], ORIGIN))).toBe('LIMIT_EXCEEDED')
    expect(c.has('new')).toBe(false)
    expect(c.get('w')).toEqual({ symbols: ['A', 'B'] })
    // A kind that keeps repeats in the value it writes (ssh tags): still counted once each.
    const ssh = bare({ kind: 'ssh', limits: { maxSetSize: 2 } })
    setRecord(ssh.c, ssh.rules, 's', { host: 'h', tags: ['a', 'a', 'b'] }, ORIGIN, NOW)
    expect(code(() => setRecord(ssh.c, ssh.rules, 't', { host: 'h', tags: ['a', 'b', 'c'] }, ORIGIN, NOW))).toBe('LIMIT_EXCEEDED')
  })

  it('history keeps one record per command and session; a repeat moves its counters', () => {
    const { c, rules } = bare({ kind: 'history' })
    const first = appendRecord(c, rules, { command: 'ls -l ', at: 100, cwd: '/a' }, {}, ORIGIN, NOW)
    expect(c.get(first.key)).toEqual({ command: 'ls -l', session: 'default', cwd: '/a', firstAt: 100, lastAt: 100, count: 1 })
    const again = appendRecord(c, rules, { command: 'ls -l', at: 300, cwd: '/b', exitCode: 1 }, {}, ORIGIN, NOW)
    expect(again.key).toBe(first.key)
    // An entry stamped earlier than the last one (a device whose clock is behind) leaves lastAt.
    appendRecord(c, rules, { command: 'ls -l', at: 200 }, {}, ORIGIN, NOW)
    expect(c.get(first.key)).toEqual({ command: 'ls -l', session: 'default', cwd: '/b', exitCode: 1, firstAt: 100, lastAt: 300, count: 3 })
    const other = appendRecord(c, rules, { command: 'ls -l', session: 's2' }, {}, ORIGIN, NOW)
    expect(other.key).not.toBe(first.key)
    expect(c.get(other.key)).toMatchObject({ firstAt: NOW, lastAt: NOW, count: 1 })
    expect(code(() => appendRecord(c, rules, { command: 'export TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyz' }, {}, ORIGIN, NOW))).toBe('SECRET_REFUSED')
  })

  it('a plain append takes a fresh key from the clock and never overwrites', () => {
    const { c, rules } = bare({ kind: 'journal' })
    const { key } = appendRecord(c, rules, { text: 'one' }, {}, ORIGIN, NOW)
    expect(c.get(key)).toEqual({ text: 'one' })
    expect(code(() => appendRecord(c, rules, { text: 'two' }, { key }, ORIGIN, NOW))).toBe('APPEND_ONLY')
    expect(c.get(key)).toEqual({ text: 'one' })
    expect(appendRecord(c, rules, { text: 'two' }, { key: 'mine' }, ORIGIN, NOW)).toEqual({ key: 'mine' })
  })

  it('appends to a log field only, and only with a record key', () => {
    const { c, rules } = bare({ kind: 'issues' })
    expect(code(() => appendRecord(c, rules, 'note', { field: 'notes' }, ORIGIN, NOW))).toBe('INVALID_ARGUMENT')
    expect(code(() => appendRecord(c, rules, 'x', { field: 'title', key: 'i1' }, ORIGIN, NOW))).toBe('INVALID_ARGUMENT')
    appendRecord(c, rules, 'first', { field: 'notes', key: 'i1' }, ORIGIN, NOW)
    appendRecord(c, rules, 'second', { field: 'notes', key: 'i1' }, ORIGIN, NOW)
    expect(c.get('i1')).toEqual({ notes: ['first', 'second'] })
  })
})
