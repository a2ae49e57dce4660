import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { KitsyncError } from '../core/errors.js'
import { readJsonFile, writeJsonFile } from './json-file.js'
import { readSecretFile, writeSecretFile } from './secret-file.js'

/**
 * The files of the peer's HTTP server in the home folder (both 0600):
 *   http.token   the bearer token of the HTTP API: 32 random bytes, base64url, made at the first
 *                start and kept (a Prometheus `credentials_file` can point at it)
 *   http.json    where the running peer serves HTTP: {url, port, pid}; removed when it stops,
 *                so a client finds the port the way it finds the control socket
 */
export interface HttpFiles {
  token: string
  info: string
}

export interface HttpInfo {
  url: string
  port: number
  pid: number
}

export function httpFiles(home: string): HttpFiles {
  return { token: join(home, 'http.token'), info: join(home, 'http.json') }
}

/** A token of 32 random bytes is 43 base64url characters; anything shorter is not used. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43,}$/

/** The token of the home, made (0600) if there is none yet. */
export async function loadOrCreateHttpToken(files: HttpFiles): Promise<string> {
  const existing = await readSecretFile(files.token)
  const bytes = existing ?? (await writeSecretFile(files.token, new TextEncoder().encode(randomBytes(32).toString('base64url'))))
  const token = new TextDecoder().decode(bytes).trim()
  if (!TOKEN_PATTERN.test(token)) {
    throw new KitsyncError(
      'DATA_CORRUPTION',
      `${files.token} does not hold a token of kitsync (43 base64url characters); remove it and a new one is made at the next start`,
    )
  }
  return token
}

/** The token, if the home has one (read by `kitsync dashboard`). */
export async function readHttpToken(files: HttpFiles): Promise<string | undefined> {
  const bytes = await readSecretFile(files.token)
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes).trim()
}

export async function writeHttpInfo(files: HttpFiles, info: HttpInfo): Promise<void> {
  await writeJsonFile(files.info, info)
}

/** What http.json says; undefined when there is none or it is not one of ours. */
export async function readHttpInfo(files: HttpFiles): Promise<HttpInfo | undefined> {
  const value = (await readJsonFile(files.info)) as Partial<HttpInfo> | undefined
  if (typeof value !== 'object' || value === null) return undefined
  if (typeof value.url !== 'string' || typeof value.port !== 'number' || typeof value.pid !== 'number') return undefined
  return { url: value.url, port: value.port, pid: value.pid }
}

export async function removeHttpInfo(files: HttpFiles): Promise<void> {
  await rm(files.info, { force: true })
}
