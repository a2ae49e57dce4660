/**
 * Layering of src/ (imports point left only):
 *   core  <-  protocol  <-  sync  <-  store, net  <-  daemon  <-  api  <-  cli
 * src/index.ts is the library entry and may import api and core.
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
    layer('store', ['core', 'protocol', 'sync']),
    layer('net', ['core', 'protocol', 'sync', 'store']),
    layer('daemon', ['core', 'protocol', 'sync', 'store', 'net']),
    layer('api', ['core', 'protocol', 'sync', 'store', 'net', 'daemon']),
    layer('cli', ['core', 'protocol', 'sync', 'store', 'net', 'daemon', 'api']),
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
      name: 'core-no-node-builtins',
      severity: 'error',
      from: { path: '^src/(core|sync)/' },
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
