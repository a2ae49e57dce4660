#!/usr/bin/env node
// Entry point of the kitsync CLI. The only place that calls process.exit.
import { applyYoungGeneration } from '../dist/cli/young-generation.js'

// Before the CLI's modules load: keep V8's young generation small (see young-generation.ts).
applyYoungGeneration()

await import('../dist/polyfill.js')
const { runCli } = await import('../dist/cli/main.js')
const { processIO } = await import('../dist/cli/node-io.js')

const code = await runCli(process.argv.slice(2), processIO())
// Let stdout drain before exiting (pipes may be asynchronous on some platforms).
process.stdout.write('', () => process.exit(code))
