import { createHash } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { debugLog } from '../core/debug-log.js'
import { KitsyncError } from '../core/errors.js'
import { readJsonFile, writeJsonFile } from '../store/json-file.js'
import { readSecretFile, writeSecretFile } from '../store/secret-file.js'

// core's logger, not @libp2p/logger: commands that only need the id load nothing of libp2p.
const log = debugLog('net:identity')

/**
 * The device identity: an Ed25519 key, stored as a libp2p protobuf private key in a 0600
 * file. Its PeerId is the device id, so the same key is the libp2p identity on the wire.
 */
export interface DeviceIdentity {
  privateKey: PrivateKey
  deviceId: string
}

export async function loadOrCreateIdentity(file: string): Promise<DeviceIdentity> {
  // libp2p's key code takes ~70 ms to load; commands that only need the id skip it (deviceIdOf).
  const { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  let bytes = await readSecretFile(file)
  if (bytes === undefined) {
    const key = await generateKeyPair('Ed25519')
    bytes = await writeSecretFile(file, privateKeyToProtobuf(key))
  }
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new KitsyncError('DATA_CORRUPTION', `the device identity in ${file} is damaged; it was left as it is`, { cause: err })
  }
  return { privateKey, deviceId: peerIdFromPrivateKey(privateKey).toString() }
}

/**
 * The device id alone, from a cache file (`<identity>.id`, not secret) that is trusted only
 * while it names the fingerprint of the key file it was computed from.
 */
export async function deviceIdOf(file: string): Promise<string> {
  const cacheFile = `${file}.id`
  const key = await readSecretFile(file)
  if (key !== undefined) {
    const fingerprint = createHash('sha256').update(key).digest('hex')
    // Only a cache: one that is missing or unreadable is computed again below.
    const cached = (await readJsonFile(cacheFile).catch(() => undefined)) /* a missing or damaged cache is recomputed from the key below */ as
      { deviceId?: unknown; fingerprint?: unknown } | undefined
    if (cached?.fingerprint === fingerprint && typeof cached.deviceId === 'string') return cached.deviceId
  }
  const identity = await loadOrCreateIdentity(file)
  const bytes = (await readSecretFile(file)) as Uint8Array
  // Only a cache: when it cannot be written, the next call computes the id again.
  await writeJsonFile(cacheFile, { deviceId: identity.deviceId, fingerprint: createHash('sha256').update(bytes).digest('hex') }).catch((err: unknown) =>
    log(`cannot write the device id cache ${cacheFile}`, err),
  )
  return identity.deviceId
}
