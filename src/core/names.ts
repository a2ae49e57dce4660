import { KitsyncError } from './errors.js'

/** Collection names: 1-64 chars, letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
const COLLECTION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export const MAX_KEY_BYTES = 1024
const encoder = new TextEncoder()

export function assertCollectionName(name: string): void {
  if (typeof name !== 'string' || !COLLECTION_NAME.test(name)) {
    throw new KitsyncError(
      'INVALID_NAME',
      `invalid collection name ${JSON.stringify(name)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
  }
}

export function assertRecordKey(key: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof key !== 'string' || key.length === 0 || /[\u0000-\u001f\u007f]/.test(key)) {
    throw new KitsyncError('INVALID_NAME', `invalid record key ${JSON.stringify(key)}: use a non-empty string without control characters`)
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit: only long keys need encoding to measure.
  if (key.length * 3 > MAX_KEY_BYTES && encoder.encode(key).byteLength > MAX_KEY_BYTES) {
    throw new KitsyncError('INVALID_NAME', `record key is longer than ${MAX_KEY_BYTES} bytes`)
  }
}

export function assertFieldName(field: string): void {
  // NUL separates the parts of the collection's flat keys: a field name must not hold one.
  // eslint-disable-next-line no-control-regex
  if (typeof field !== 'string' || field.length === 0 || /[\u0000-\u001f\u007f]/.test(field)) {
    throw new KitsyncError('INVALID_NAME', `invalid field name ${JSON.stringify(field)}: use a non-empty string without control characters`)
  }
  if (field === '__proto__') throw new KitsyncError('INVALID_NAME', 'a field cannot be named __proto__ (it cannot be stored)')
}
