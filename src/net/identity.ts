import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { KitsyncError } from '../core/errors.js'
import { readSecretFile, writeSecretFile } from '../store/secret-file.js'

/**
 * The device identity: an Ed25519 key, stored as a libp2p protobuf private key in a 0600
 * file. Its PeerId is the device id, so the same key is the libp2p identity on the wire.
 */
export interface DeviceIdentity {
  privateKey: PrivateKey
  deviceId: string
}

export async function loadOrCreateIdentity(file: string): Promise<DeviceIdentity> {
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
