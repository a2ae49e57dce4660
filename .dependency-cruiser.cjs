/**
 * Layering of src/ (imports point left only):
 *   core  <-  protocol  <-  sync  <-  blind  <-  store, net  <-  daemon  <-  api  <-  cli
 *   core  <-  folder  <-  daemon   (folder/: a shared folder's files on disk; it needs only core)
 * src/index.ts is the library entry and may import api and core.
 * sync/ is the Yjs sync protocol only; blind/ is the blind store (VPS) protocol on top of it
 * (it tells updates merged by a sync session from local ones, and runs over sync's PeerLink).
 * store/ sits above blind/ because it implements blind's storage port (blind/blind-storage.ts)
 * on LevelDB; blind itself never imports store, net or anything with I/O.
 * level/classic-level only in store/, libp2p only in net/, and no import cycles anywhere.
 */
const layer = (name, allowed) => ({
  name: `${name}-imports`,
  comment: `src/${name} may import only ${allowed.join(', ') || 'itself'}`,
  severity: 'error',
  from: { path: `^src/${name}/` },
  to: { path: '^src/', pathNot: [`^src/(${[name, ...allowed].join('|')})/`] },
})

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    layer('core', []),
    layer('protocol', ['core']),
    layer('sync', ['core', 'protocol']),
    layer('blind', ['core', 'protocol', 'sync']),
    layer('store', ['core', 'protocol', 'sync', 'blind']),
    layer('net', ['core', 'protocol', 'sync', 'blind', 'store']),
    layer('folder', ['core']),
    layer('daemon', ['core', 'protocol', 'sync', 'blind', 'store', 'net', 'folder']),
    layer('api', ['core', 'protocol', 'sync', 'blind', 'store', 'net', 'folder', 'daemon']),
    layer('cli', ['core', 'protocol', 'sync', 'blind', 'store', 'net', 'folder', 'daemon', 'api']),
    {
      name: 'level-only-in-store',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/store/' },
      to: { path: 'node_modules/(level|classic-level|memory-level|abstract-level)/' },
    },
    {
      name: 'libp2p-only-in-net',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/net/' },
      to: { path: 'node_modules/(libp2p|@libp2p|@chainsafe|@multiformats)/' },
    },
    {
      name: 'pure-layers-no-node-builtins',
      comment: 'core, sync and blind are pure logic: no node built-ins (WebCrypto and the like come from globals)',
      severity: 'error',
      from: { path: '^src/(core|sync|blind)/' },
      to: { dependencyTypes: ['core'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
}
