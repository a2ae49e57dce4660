import { describe, expect, it } from 'vitest'
import {
  ManifestView,
  newFileId,
  planLocalChanges,
  resolvePathClaims,
  reviveAfterDelete,
  type LocalChange,
  type StampedEntry,
} from '../../src/core/folder-manifest.js'
import type { FolderChange } from '../../src/folder/folder-watcher.js'

const stampAt = (ms: number, node: string): string => `${ms.toString(36).padStart(9, '0')}.0000.${node}`
const facts = (hash: string, size = 10, executable = false) => ({ size, hash, executable, binary: false })

function entry(fileId: string, path: string, hash: string, extra: Partial<StampedEntry> = {}): StampedEntry {
  return { fileId, path, kind: 'text', size: 10, hash, x: false, pathSide: { device: 'devA', stamp: stampAt(1_000, 'devA') }, ...extra }
}

function ids(): () => string {
  let n = 0
  return () => `id${++n}`
}

describe('the manifest from local changes', () => {
  it('a new file is a new record; an edit writes its content fields (also of a file made in the same batch); an unchanged save writes nothing', () => {
    const view = new ManifestView([entry('f1', 'a.txt', 'h1')])
    const writes = planLocalChanges(
      view,
      [
        { kind: 'added', path: 'b.json', state: facts('h2', 2) },
        { kind: 'modified', path: 'a.txt', state: facts('h1b', 11, true) },
        { kind: 'modified', path: 'b.json', state: facts('h3', 3) },
        { kind: 'renamed', path: 'c.json', from: 'b.json', state: facts('h3', 3) },
      ],
      () => 'stamp',
      ids(),
    )
    expect(writes).toEqual([
      { op: 'create', fileId: 'id1', entry: { path: 'b.json', kind: 'text', size: 2, hash: 'h2', x: false } },
      { op: 'update', fileId: 'f1', fields: { kind: 'text', size: 11, hash: 'h1b', x: true } },
      { op: 'update', fileId: 'id1', fields: { kind: 'text', size: 3, hash: 'h3', x: false } },
      { op: 'update', fileId: 'id1', fields: { path: 'c.json' } },
    ])
    expect(planLocalChanges(view, [{ kind: 'modified', path: 'a.txt', state: facts('h1') }], () => 'stamp')).toEqual([])
  })

  it('a rename writes only the path of the same record (its history and document stay)', () => {
    const view = new ManifestView([entry('f1', 'old/a.yaml', 'h1')])
    expect(planLocalChanges(view, [{ kind: 'renamed', path: 'new/a.yaml', from: 'old/a.yaml', state: facts('h1') }], () => 's')).toEqual([
      { op: 'update', fileId: 'f1', fields: { path: 'new/a.yaml' } },
    ])
  })

  it('a delete records its stamp and the version it saw; a file made again at that path takes the record back', () => {
    const view = new ManifestView([entry('f1', 'a.txt', 'h1')])
    expect(planLocalChanges(view, [{ kind: 'removed', path: 'a.txt' }], () => 'T1')).toEqual([
      { op: 'update', fileId: 'f1', fields: { deleted: { t: 'T1', hash: 'h1' } } },
    ])
    const after = new ManifestView([entry('f1', 'a.txt', 'h1', { deleted: { t: 'T1', hash: 'h1' } })])
    expect(planLocalChanges(after, [{ kind: 'added', path: 'a.txt', state: facts('h9') }], () => 'T2', ids())).toEqual([
      { op: 'update', fileId: 'f1', fields: { kind: 'text', size: 10, hash: 'h9', x: false, deleted: null } },
    ])
  })

  it('an excluded file (too large, now a symlink, newly ignored) writes nothing: it is not a delete', () => {
    const view = new ManifestView([entry('f1', 'a.txt', 'h1')])
    expect(planLocalChanges(view, [{ kind: 'excluded', path: 'a.txt' }], () => 's')).toEqual([])
  })

  it('directories are records too, so empty ones sync', () => {
    const writes = planLocalChanges(new ManifestView([]), [{ kind: 'dir-added', path: 'empty' }], () => 's', ids())
    expect(writes).toEqual([{ op: 'create', fileId: 'id1', entry: { path: 'empty', kind: 'dir', size: 0, hash: '', x: false } }])
  })

  it("takes the watcher's changes as they are", () => {
    const change: FolderChange = {
      kind: 'added',
      path: 'x.txt',
      state: { kind: 'file', size: 1, mtimeMs: 0, ctimeMs: 0, ino: 1, executable: false, hash: 'h', binary: false },
    }
    const local: LocalChange = change
    expect(planLocalChanges(new ManifestView([]), [local], () => 's', ids())).toHaveLength(1)
  })
})

describe('settling merged records', () => {
  it('two files created at one path with the same content become one (the smallest fileId stays)', () => {
    const writes = resolvePathClaims([entry('zz', 'a.json', 'h'), entry('aa', 'a.json', 'h'), entry('mm', 'b.json', 'h')], () => 'T')
    expect(writes).toEqual([{ op: 'update', fileId: 'zz', fields: { from: 'aa', deleted: { t: 'T', hash: 'h' } } }])
  })

  it('with different content, the later path write keeps the path and the other moves to a conflict name', () => {
    const early = entry('f1', 'cfg/a.json', 'h1', { pathSide: { device: 'devA', stamp: stampAt(Date.UTC(2026, 11, 7, 10), 'devA') } })
    const late = entry('f2', 'cfg/a.json', 'h2', { pathSide: { device: 'devB', stamp: stampAt(Date.UTC(2026, 11, 7, 11), 'devB') } })
    const writes = resolvePathClaims([late, early], () => 'T')
    expect(writes).toEqual([{ op: 'update', fileId: 'f1', fields: { path: 'cfg/a.conflict-devA-20261207T100000Z.json' } }])
    // Every device computes the same, whatever the order it holds the records in.
    expect(resolvePathClaims([early, late], () => 'T')).toEqual(writes)
  })

  it('an edit against a delete: the device with a newer version brings the file back', () => {
    const gone = entry('f1', 'a.txt', 'h1', { deleted: { t: 'T', hash: 'h1' } })
    expect(reviveAfterDelete(gone, facts('h2', 12))).toEqual({
      op: 'update',
      fileId: 'f1',
      fields: { deleted: null, kind: 'text', size: 12, hash: 'h2', x: false },
    })
    expect(reviveAfterDelete(gone, facts('h1'))).toBeUndefined()
    expect(reviveAfterDelete(entry('f1', 'a.txt', 'h1'), facts('h2'))).toBeUndefined()
  })

  it('fileIds are 22 characters of base64url, and do not repeat', () => {
    const a = newFileId()
    expect(a).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(new Set(Array.from({ length: 1000 }, newFileId)).size).toBe(1000)
  })
})
