#!/usr/bin/env node
// Entry point of the kitsync CLI. The only place that calls process.exit.
import '../dist/polyfill.js'
import { runCli } from '../dist/cli/main.js'
import { processIO } from '../dist/cli/node-io.js'

const code = await runCli(process.argv.slice(2), processIO())
// Let stdout drain before exiting (pipes may be asynchronous on some platforms).
process.stdout.write('', () => process.exit(code))
