import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { conflictPath, decideNewestWins, isValidStructured } from '../../src/core/folder-conflicts.js'
import { captureText, capturedText, currentBase, fileText, mergeRemoteUpdate, newTextFileDoc, settleMerge, textAt } from '../../src/core/folder-text-doc.js'
import { applyTextChange, decodeText, textEdits } from '../../src/core/folder-text.js'

const stampAt = (ms: number, node: string): string => `${ms.toString(36).padStart(9, '0')}.0000.${node}`

/** Two replicas of one file that start from the same base text. */
function replicas(base: string): [Y.Doc, Y.Doc] {
  const a = newTextFileDoc()
  captureText(a, base, { device: 'devA', stamp: stampAt(1_000, 'devA') })
  const b = newTextFileDoc()
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  return [a, b]
}

/** Exchange what each lacks, as a sync session does (state vectors, then the differences). */
function exchange(a: Y.Doc, b: Y.Doc): { toA: Uint8Array; toB: Uint8Array } {
  return { toA: Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)), toB: Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)) }
}

describe('text edits', () => {
  it.each([
    ['', 'abc'],
    ['abc', ''],
    ['a\nb\nc\n', 'a\nB\nc\n'],
    ['one\ntwo\nthree\n', 'zero\none\ntwo\nthree\nfour\n'],
    ['x😀y', 'x😁y'],
    ['\nstart', 'X\nstart'],
    ['same', 'same'],
  ])('%j -> %j applies exactly', (from, to) => {
    const doc = new Y.Doc()
    const text = doc.getText('t')
    text.insert(0, from)
    applyTextChange(text, to)
    expect(text.toString()).toBe(to)
  })

  it('a one-line change of a 2,000-line file is one small edit', () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}: ${'x'.repeat(40)}`)
    const from = lines.join('\n')
    lines[1000] = 'line 1000: changed'
    const edits = textEdits(from, lines.join('\n'))
    expect(edits).toHaveLength(1)
    expect(edits[0]!.delete + edits[0]!.insert.length).toBeLessThan(60)
  })

  it('edits of two separate lines stay two edits (the line between is not rewritten)', () => {
    const edits = textEdits('a\nmiddle\nc\n', 'A\nmiddle\nC\n')
    expect(edits).toHaveLength(2)
    expect(edits.every((e) => !e.insert.includes('middle'))).toBe(true)
  })

  it('decodes UTF-8 text and calls NUL bytes and invalid UTF-8 binary', () => {
    expect(decodeText(new TextEncoder().encode('héllo'))).toBe('héllo')
    expect(decodeText(new Uint8Array([0x61, 0, 0x62]))).toBeUndefined()
    expect(decodeText(new Uint8Array([0xff, 0xfe, 0x41]))).toBeUndefined()
  })
})

describe('merging a text file edited on two devices', () => {
  it('edits of different lines on two offline replicas both survive', () => {
    const base = 'alpha\nbeta\ngamma\ndelta\n'
    const [a, b] = replicas(base)
    captureText(a, 'alpha\nBETA from A\ngamma\ndelta\n', { device: 'devA', stamp: stampAt(2_000, 'devA') })
    captureText(b, 'alpha\nbeta\ngamma\nDELTA from B\n', { device: 'devB', stamp: stampAt(2_001, 'devB') })
    const { toA, toB } = exchange(a, b)
    const atA = mergeRemoteUpdate(a, 'notes.txt', toA, { device: 'devA', stamp: stampAt(3_000, 'devA') })
    const atB = mergeRemoteUpdate(b, 'notes.txt', toB, { device: 'devB', stamp: stampAt(3_000, 'devB') })
    const expected = 'alpha\nBETA from A\ngamma\nDELTA from B\n'
    expect(atA).toMatchObject({ kind: 'merged', disk: expected })
    expect(atB).toMatchObject({ kind: 'merged', disk: expected })
    expect(fileText(a)).toBe(fileText(b))
  })

  it('edits of the same line both survive, merged by character, in the same order on both', () => {
    const [a, b] = replicas('hello world\n')
    captureText(a, 'hello brave world\n', { device: 'devA', stamp: stampAt(2_000, 'devA') })
    captureText(b, 'hello world!\n', { device: 'devB', stamp: stampAt(2_001, 'devB') })
    const { toA, toB } = exchange(a, b)
    mergeRemoteUpdate(a, 'n.txt', toA, { device: 'devA', stamp: stampAt(3_000, 'devA') })
    mergeRemoteUpdate(b, 'n.txt', toB, { device: 'devB', stamp: stampAt(3_000, 'devB') })
    expect(fileText(a)).toBe('hello brave world!\n')
    expect(fileText(b)).toBe(fileText(a))
  })

  it('a JSON file still valid after the merge is merged', () => {
    const [a, b] = replicas('{\n  "a": 1,\n  "b": 2\n}\n')
    captureText(a, '{\n  "a": 10,\n  "b": 2\n}\n', { device: 'devA', stamp: stampAt(2_000, 'devA') })
    captureText(b, '{\n  "a": 1,\n  "b": 20\n}\n', { device: 'devB', stamp: stampAt(2_001, 'devB') })
    const { toA } = exchange(a, b)
    const r = mergeRemoteUpdate(a, 'cfg.json', toA, { device: 'devA', stamp: stampAt(3_000, 'devA') })
    expect(r.kind).toBe('merged')
    expect(JSON.parse(r.disk)).toEqual({ a: 10, b: 20 })
  })

  it('JSON broken by a merge: the latest side wins on both devices, the other is the conflict file', () => {
    // Both replace the value of "a": each side is valid JSON, the merge holds both new values side by side.
    // (Two keys appended after the same line merge into valid JSON: Yjs keeps both insertions whole.)
    const base = '{\n  "a": 1,\n  "b": 2\n}\n'
    const [a, b] = replicas(base)
    const textA = '{\n  "a": "x",\n  "b": 2\n}\n'
    const textB = '{\n  "a": true,\n  "b": 2\n}\n'
    captureText(a, textA, { device: 'devA', stamp: stampAt(2_000, 'devA') })
    captureText(b, textB, { device: 'devB', stamp: stampAt(5_000, 'devB') }) // B is later: B wins
    const { toA, toB } = exchange(a, b)
    const atA = mergeRemoteUpdate(a, 'dir/scenario.json', toA, { device: 'devA', stamp: stampAt(6_000, 'devA') })
    const atB = mergeRemoteUpdate(b, 'dir/scenario.json', toB, { device: 'devB', stamp: stampAt(6_001, 'devB') })
    expect(isValidStructured('json', atA.merged)).toBe(false)
    expect(atA).toMatchObject({ kind: 'conflict', winner: 'remote', disk: textB })
    expect(atB).toMatchObject({ kind: 'conflict', winner: 'local', disk: textB })
    const backup = { text: textA, path: 'dir/scenario.conflict-devA-19700101T000002Z.json' }
    expect(atA.kind === 'conflict' && atA.backup).toEqual(backup)
    expect(atB.kind === 'conflict' && atB.backup).toEqual(backup)
    // Only the winner repaired the document; after the next exchange both hold the winner's text once.
    const again = exchange(a, b)
    Y.applyUpdate(a, again.toA)
    Y.applyUpdate(b, again.toB)
    expect(fileText(a)).toBe(textB)
    expect(fileText(b)).toBe(textB)
  })

  it('a JSON file arriving where this device held nothing is written as it came, valid or not (no conflict file)', () => {
    for (const text of ['{\n  "a": 1\n}\n', '{\n  "a": 1,\n']) {
      const a = newTextFileDoc()
      captureText(a, text, { device: 'devA', stamp: stampAt(2_000, 'devA') })
      const b = newTextFileDoc()
      Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
      const r = settleMerge(b, 'dir/scenario.json', '', new Map(), { device: 'devB', stamp: stampAt(3_000, 'devB') })
      expect(r).toMatchObject({ kind: 'merged', before: '', merged: text, disk: text })
      expect(fileText(b)).toBe(text)
    }
  })

  it('YAML broken by a merge follows the same rule', () => {
    const [a, b] = replicas('items:\n  - one\n')
    captureText(a, 'items:\n  - one\nname: x\n', { device: 'devA', stamp: stampAt(9_000, 'devA') }) // A is later
    captureText(b, 'items:\n  - one\nname: y\n', { device: 'devB', stamp: stampAt(2_000, 'devB') })
    const { toA } = exchange(a, b)
    const r = mergeRemoteUpdate(a, 'c.yaml', toA, { device: 'devA', stamp: stampAt(10_000, 'devA') })
    // Two `name:` keys: invalid YAML (duplicate keys), so A's own version stays.
    expect(r).toMatchObject({ kind: 'conflict', winner: 'local', disk: 'items:\n  - one\nname: x\n' })
    expect(fileText(a)).toBe('items:\n  - one\nname: x\n')
  })

  it('a save captured against an older base is rebased: a peer edit merged since is kept', () => {
    const [a, b] = replicas('one\ntwo\nthree\n')
    const base = captureText(a, 'one\ntwo\nthree\n!\n', { device: 'devA', stamp: stampAt(1_500, 'devA') }).base
    captureText(b, 'zero\none\ntwo\nthree\n', { device: 'devB', stamp: stampAt(2_000, 'devB') })
    Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)))
    // A's disk still holds its own text (the peer's edit is not written out yet) and is saved again.
    const r = captureText(a, 'one\nTWO\nthree\n!\n', { device: 'devA', stamp: stampAt(3_000, 'devA') }, { base })
    expect(r.changed).toBe(true)
    expect(fileText(a)).toBe('zero\none\nTWO\nthree\n!\n')
    // Without the base, the diff from the document's text would have removed the peer's line.
    expect(capturedText(a, 'devA')).toBe('one\nTWO\nthree\n!\n')
  })

  it('rebuilds the text a device had when it captured', () => {
    const [a] = replicas('v1\n')
    captureText(a, 'v2\n', { device: 'devA', stamp: stampAt(2_000, 'devA') })
    const b = newTextFileDoc()
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
    captureText(b, 'v3 by B\n', { device: 'devB', stamp: stampAt(3_000, 'devB') })
    expect(capturedText(b, 'devA')).toBe('v2\n')
    expect(capturedText(b, 'devB')).toBe('v3 by B\n')
  })
})

describe('conflict names and newest wins', () => {
  it.each([
    ['a/b/config.yaml', 'a/b/config.conflict-devA-20261207T130000Z.yaml'],
    ['.bashrc', '.bashrc.conflict-devA-20261207T130000Z'],
    ['Makefile', 'Makefile.conflict-devA-20261207T130000Z'],
    ['x.tar.gz', 'x.tar.conflict-devA-20261207T130000Z.gz'],
  ])('%s -> %s', (path, expected) => {
    expect(conflictPath(path, { device: 'devA', stamp: stampAt(Date.UTC(2026, 11, 7, 13, 0, 0), 'devA') })).toBe(expected)
  })

  it('the later stamp wins; equal stamps fall to the greater device id', () => {
    expect(decideNewestWins('p.bin', { device: 'a', stamp: stampAt(5, 'a') }, { device: 'b', stamp: stampAt(4, 'b') }).winner).toBe('local')
    expect(decideNewestWins('p.bin', { device: 'a', stamp: stampAt(5, 'x') }, { device: 'b', stamp: stampAt(5, 'x') }).winner).toBe('remote')
  })
})

describe('a text document loaded from updates', () => {
  it('keeps deleted text, so a save is rebased from a base taken before a peer deleted something', () => {
    const a = newTextFileDoc()
    const updates: Uint8Array[] = []
    a.on('update', (u: Uint8Array) => updates.push(u))
    captureText(a, 'one\ntwo\nthree\nfour\n', { device: 'devA', stamp: stampAt(1_000, 'devA') })
    const b = newTextFileDoc()
    for (const u of updates) Y.applyUpdate(b, u)
    const base = currentBase(b)
    captureText(a, 'ONE from a\ntwo\nthree\nfour\n', { device: 'devA', stamp: stampAt(2_000, 'devA') })
    // B's document loaded anew from the stored updates (a restart), the peer's delete among them.
    const reloaded = newTextFileDoc()
    for (const u of updates) Y.applyUpdate(reloaded, u)
    expect(textAt(reloaded, base)).toBe('one\ntwo\nthree\nfour\n')
    captureText(reloaded, 'one\ntwo\nthree\nFOUR from b\n', { device: 'devB', stamp: stampAt(3_000, 'devB') }, { base })
    Y.applyUpdate(a, Y.encodeStateAsUpdate(reloaded, Y.encodeStateVector(a)))
    expect(fileText(a)).toBe('ONE from a\ntwo\nthree\nFOUR from b\n')
    expect(fileText(reloaded)).toBe('ONE from a\ntwo\nthree\nFOUR from b\n')
  })
})
