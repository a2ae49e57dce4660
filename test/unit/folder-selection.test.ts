import { describe, expect, it } from 'vitest'
import { caseConflicts, checkFolderPath } from '../../src/core/folder-paths.js'
import { FolderSelection } from '../../src/core/folder-selection.js'

describe('folder selection', () => {
  const text = { size: 100, binary: false }

  it.each([
    ['.git/config', 'default'],
    ['sub/.git/HEAD', 'default'],
    ['.kitsync/trash/x', 'internal'],
    ['.notes.txt.swp', 'default'],
    ['notes.txt.swx', 'default'],
    ['notes.txt~', 'default'],
    ['#notes.txt#', 'default'],
    ['.#notes.txt', 'default'],
    ['4913', 'default'],
    ['.DS_Store', 'default'],
    ['a/b/.DS_Store', 'default'],
    ['.notes.txt.kitsync-tmp-0a1b2c', 'default'],
    ['notes.txt___jb_tmp___', 'default'],
  ])('%s is left out by default (%s)', (path, reason) => {
    expect(new FolderSelection().file(path, text)).toEqual({ included: false, reason })
  })

  it.each(['notes.txt', 'a/b/config.yaml', '.bashrc', 'scenario.json', 'vim.swpx'])('%s syncs by default', (path) => {
    expect(new FolderSelection().file(path, text)).toEqual({ included: true })
  })

  it('leaves out files over the size cap (default 1 MiB), and honours a per-folder cap', () => {
    expect(new FolderSelection().file('a.txt', { size: 1024 * 1024 + 1, binary: false })).toEqual({ included: false, reason: 'too-large' })
    expect(new FolderSelection().file('a.txt', { size: 1024 * 1024, binary: false })).toEqual({ included: true })
    expect(new FolderSelection({ maxFileSize: 10 }).file('a.txt', { size: 11, binary: false })).toEqual({ included: false, reason: 'too-large' })
  })

  it('leaves out binaries unless an include glob names them', () => {
    expect(new FolderSelection().file('logo.png', { size: 10, binary: true })).toEqual({ included: false, reason: 'binary' })
    expect(new FolderSelection({ include: ['*.png', '**/*.json'] }).file('img/logo.png', { size: 10, binary: true })).toEqual({ included: true })
  })

  it('include globs are a whitelist; exclude globs win over them (the PlanAlign workspace)', () => {
    const sel = new FolderSelection({ include: ['**/*.json', '**/*.yaml'], exclude: ['*.duckdb', '*.xlsx'] })
    expect(sel.file('ws1/scenarios/s1/scenario.json', text)).toEqual({ included: true })
    expect(sel.file('base_config.yaml', text)).toEqual({ included: true })
    expect(sel.file('ws1/scenarios/s1/simulation.duckdb', text)).toEqual({ included: false, reason: 'exclude' })
    expect(sel.file('ws1/notes.txt', text)).toEqual({ included: false, reason: 'not-included' })
  })

  it('.kitsyncignore has gitignore syntax: patterns, directories, negation', () => {
    const sel = new FolderSelection({ ignoreFile: '# outputs\n*.duckdb\nresults/\n!results/keep.json\n/build\n' })
    expect(sel.file('a/b/sim.duckdb', text)).toEqual({ included: false, reason: 'ignore-file' })
    expect(sel.directory('s1/results')).toEqual({ included: false, reason: 'ignore-file' })
    expect(sel.file('build', text)).toEqual({ included: false, reason: 'ignore-file' })
    expect(sel.file('src/build', text)).toEqual({ included: true })
    expect(sel.file('s1/config.yaml', text)).toEqual({ included: true })
  })

  it('the folder itself is a directory that is always walked', () => {
    expect(new FolderSelection({ ignoreFile: '*\n', exclude: ['**'] }).directory('')).toEqual({ included: true })
  })

  it('an excluded directory prunes what is under it', () => {
    const sel = new FolderSelection({ exclude: ['node_modules', 'out/**'] })
    expect(sel.directory('a/node_modules')).toEqual({ included: false, reason: 'exclude' })
    expect(sel.file('a/node_modules/x/index.js', text)).toEqual({ included: false, reason: 'exclude' })
    expect(sel.directory('out')).toEqual({ included: false, reason: 'exclude' })
  })
})

describe('folder paths from peers', () => {
  it.each([
    [42, 'NOT_A_STRING'],
    ['', 'EMPTY'],
    ['../etc/passwd', 'DOT_SEGMENT'],
    ['a/../../x', 'DOT_SEGMENT'],
    ['a/./b', 'DOT_SEGMENT'],
    ['..', 'DOT_SEGMENT'],
    ['/etc/passwd', 'ABSOLUTE'],
    ['C:/Windows/x', 'DRIVE'],
    ['c:x', 'DRIVE'],
    ['..\\..\\x', 'BACKSLASH'],
    ['a\\b', 'BACKSLASH'],
    ['a\0b', 'NUL'],
    ['a\nb', 'CONTROL'],
    ['a//b', 'EMPTY_SEGMENT'],
    ['a/', 'EMPTY_SEGMENT'],
    ['.kitsync/trash/x', 'RESERVED'],
    ['.git/hooks/pre-commit', 'RESERVED'],
    ['sub/.GIT/config', 'RESERVED'],
    ['cafe\u0301.txt', 'NOT_NFC'],
    ['x'.repeat(256), 'TOO_LONG'],
    [`${'abcdefgh/'.repeat(460)}x`, 'TOO_LONG'],
  ])('%j is refused: %s', (path, reason) => {
    expect(checkFolderPath(path)).toEqual({ ok: false, reason })
  })

  it.each(['a.txt', 'dir/sub/file.json', '.bashrc', 'a..b', '...', 'café.txt', 'x'.repeat(255)])('%j is accepted', (path) => {
    expect(checkFolderPath(path)).toMatchObject({ ok: true, path })
  })

  it('finds names that only differ by case', () => {
    expect(caseConflicts(['README.md', 'a/b', 'Readme.md', 'A/b', 'c'])).toEqual([
      ['README.md', 'Readme.md'],
      ['A/b', 'a/b'],
    ])
  })
})
