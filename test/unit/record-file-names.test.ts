import { describe, expect, it } from 'vitest'
import {
  collectionFolderName,
  COLLECTION_FILE,
  decodeStem,
  encodeKey,
  isLongStem,
  LONG_PREFIX,
  MAX_STEM,
  recordFileName,
} from '../../src/core/record-file-names.js'

/** The file names of a git export: safe on Linux, macOS and Windows, reversible, no collisions. */

const SAFE = /^[a-z0-9._!%~-]+$/
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/i

function assertSafe(name: string): void {
  expect(name).toMatch(SAFE)
  expect(name.length).toBeLessThanOrEqual(MAX_STEM + '.json'.length)
  expect(name).not.toMatch(/^[._]/)
  expect(name).not.toMatch(/[. ]$/)
  expect(name.split('.')[0]).not.toMatch(WINDOWS_DEVICE)
  expect(name).not.toBe(COLLECTION_FILE)
}

const TRICKY = [
  'a',
  'Alert-7',
  'alert-7',
  'ALERT-7',
  '.',
  '..',
  '...',
  '.hidden',
  'trailing.',
  '_collection',
  '_x',
  'a/b',
  '../../etc/passwd',
  'C:\\Windows',
  'a\\b',
  'a:b*c?d"e<f>g|h',
  'with space ',
  ' lead',
  '\u0000',
  'nul\u0000byte',
  'CON',
  'con',
  'Con',
  'nul',
  'NUL.txt',
  'nul.tar.gz',
  'com1',
  'LPT9.json',
  'aux.',
  'prn_x',
  'é',
  'e\u0301',
  '日本語のキー',
  '🎉 party',
  'ß',
  'SS',
  'ss',
  '%41',
  '!a',
  'A',
  '~tilde',
  'a.json',
  '0mf1a2b3c.0000.abcd1234',
]

describe('record file names', () => {
  it.each(TRICKY.map((k) => [JSON.stringify(k), k]))('%s maps to a safe name that decodes back', (_label, key) => {
    const stem = encodeKey(key)
    assertSafe(recordFileName(key))
    expect(isLongStem(stem)).toBe(false)
    expect(decodeStem(stem)).toBe(key)
  })

  it('gives every tricky key its own name, even on a case-insensitive file system', () => {
    const names = TRICKY.map((k) => recordFileName(k).toLowerCase())
    expect(new Set(names).size).toBe(TRICKY.length)
  })

  it('keeps plain keys readable and marks case', () => {
    expect(recordFileName('alert-7')).toBe('alert-7.json')
    expect(recordFileName('Alert-7')).toBe('!alert-7.json')
    expect(recordFileName('a/b')).toBe('a%2fb.json')
    expect(recordFileName('..')).toBe('%2e%2e.json')
    expect(recordFileName('CON')).toBe('!c!o!n.json')
    expect(recordFileName('con')).toBe('%63on.json')
    expect(recordFileName('nul.tar.gz')).toBe('%6eul.tar.gz.json')
    expect(recordFileName('_collection')).toBe('%5fcollection.json')
    expect(recordFileName('é')).toBe('%c3%a9.json')
  })

  it('refuses names that are not the canonical encoding of a key', () => {
    for (const stem of ['%61', '%2F', 'A', '!1', '%', '%zz', 'con', '.x', '_collection', 'x~0123', 'a b', '', '%ff'])
      expect(decodeStem(stem), stem).toBeUndefined()
  })

  it('cuts long keys to a prefix and a hash, apart even when their prefixes match', () => {
    const base = 'k'.repeat(300)
    const keys = [base, base + 'a', base + 'b', 'é'.repeat(500), '/'.repeat(1024), 'A'.repeat(200), 'x'.repeat(LONG_PREFIX - 1) + '%'.repeat(10)]
    const stems = keys.map(encodeKey)
    for (const [i, stem] of stems.entries()) {
      assertSafe(stem + '.json')
      expect(isLongStem(stem), keys[i]).toBe(true)
      expect(decodeStem(stem)).toBeUndefined()
      // The prefix never ends inside an escape.
      expect(stem.split('~')[0]).not.toMatch(/(%[0-9a-f]?|!)$/)
    }
    expect(new Set(stems).size).toBe(keys.length)
    expect(encodeKey(base)).toBe(encodeKey(base))
    // A key whose name is exactly MAX_STEM long keeps the plain form.
    expect(isLongStem(encodeKey('k'.repeat(MAX_STEM)))).toBe(false)
    expect(isLongStem(encodeKey('k'.repeat(MAX_STEM + 1)))).toBe(true)
  })

  it('names collection folders the same way', () => {
    expect(collectionFolderName('notes')).toBe('notes')
    expect(collectionFolderName('Notes')).toBe('!notes')
    expect(collectionFolderName('drawings.BTCUSD')).toBe('drawings.!b!t!c!u!s!d')
    expect(collectionFolderName('aux')).toBe('%61ux')
    expect(collectionFolderName('x.')).toBe('x%2e')
    expect(isLongStem(collectionFolderName('A'.repeat(64)))).toBe(false)
  })
})
