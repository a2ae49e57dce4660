// Writes docs/openapi.json from the built code (npm run openapi): the document the peer serves
// at /api/v1/openapi.json, which a test keeps equal to the file.
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { buildOpenApi } from '../dist/protocol/http-openapi.js'
import { KITSYNC_VERSION } from '../dist/core/version.js'

const file = fileURLToPath(new URL('../docs/openapi.json', import.meta.url))
writeFileSync(file, JSON.stringify(buildOpenApi(KITSYNC_VERSION), null, 2) + '\n')
console.log(`wrote ${file}`)
