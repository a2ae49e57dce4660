#!/usr/bin/env node
// Entry point of the kitsync CLI. The only place that calls process.exit.
import { applyYoungGeneration } from '../dist/cli/young-generation.js'

// Everything the CLI (and a peer it runs) creates is private to its user: 0600 files, 0700
// folders, LevelDB's tables included (they take no mode). Set here, for this process only: the
// library never changes a host app's umask; there the 0700 home folder keeps others out.
process.umask(0o077)

// Before the CLI's modules load: keep V8's young generation small (see young-generation.ts).
applyYoungGeneration()
// A full garbage collection once the peer dropped a large idle document (see gc-release.ts).
;(await import('../dist/cli/gc-release.js')).enableMemoryRelease()

await import('../dist/polyfill.js')
const { runCli } = await import('../dist/cli/main.js')
const { processIO } = await import('../dist/cli/node-io.js')

const code = await runCli(process.argv.slice(2), processIO())
// Let stdout drain before exiting (pipes may be asynchronous on some platforms).
process.stdout.write('', () => process.exit(code))
