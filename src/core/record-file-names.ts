/**
 * File names for records and collections in a git export (`kitsync export --git`): any record
 * key maps to one name that Linux, macOS and Windows all accept, that two keys never share (not
 * even keys that differ only by case, on a case-insensitive file system), and that gives the
 * key back. The encoding, byte by byte over the key's UTF-8:
 *
 *   a-z 0-9 - _ .   kept as they are
 *   A-Z             `!` and the letter in lower case (`Alert` -> `!alert`)
 *   any other byte  `%` and two lower-case hex digits (`/` -> `%2f`, `é` -> `%c3%a9`)
 *
 * so a name holds only lower-case letters, digits and `-_.!%`: two different names never differ
 * by case alone, and non-ASCII keys do not meet macOS's Unicode normalisation. Then:
 * - a leading `.` or `_` and a trailing `.` are escaped (`%2e`, `%5f`): no hidden files, no
 *   `.`/`..`, no name Windows trims; names starting with `_` stay free for kitsync's own files;
 * - a name whose part before the first `.` is a Windows device name (CON, PRN, AUX, NUL,
 *   COM0-9, LPT0-9) has its first character escaped (`con` -> `%63on`);
 * - a name longer than MAX_STEM characters is cut to LONG_PREFIX characters (at an escape
 *   boundary), followed by `~` and 16 hex digits of a 64-bit FNV-1a hash of the key. `~` never
 *   appears otherwise, and the key of such a name is kept in the collection's `_collection.json`.
 * Record files are `<name>.json`. Only the canonical name of a key decodes: a name that would
 * encode differently (`%61` for `a`, upper-case hex) is not a record file.
 */

/** Longest encoded name (before `.json`); a whole path stays far below Windows's 260 characters. */
export const MAX_STEM = 128
/** Characters of the encoded key kept in front of the hash of a long name. */
export const LONG_PREFIX = 100
/** kitsync's own file in each collection folder (its kind and settings, and the keys of long names). */
export const COLLECTION_FILE = '_collection.json'
export const RECORD_SUFFIX = '.json'

const WINDOWS_DEVICES = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

function keptByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x5f || b === 0x2e
}

const hex = (b: number): string => '%' + b.toString(16).padStart(2, '0')

/** The full encoding of a key (no length limit). */
function encodeFull(key: string): string {
  const bytes = encoder.encode(key)
  const parts: string[] = []
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number
    const edge = (i === 0 && (b === 0x2e || b === 0x5f)) || (i === bytes.length - 1 && b === 0x2e)
    if (keptByte(b) && !edge) parts.push(String.fromCharCode(b))
    else if (b >= 0x41 && b <= 0x5a) parts.push('!' + String.fromCharCode(b + 0x20))
    else parts.push(hex(b))
  }
  let name = parts.join('')
  const dot = name.indexOf('.')
  if (WINDOWS_DEVICES.test(dot < 0 ? name : name.slice(0, dot))) name = hex(name.charCodeAt(0)) + name.slice(1)
  return name
}

/** 64-bit FNV-1a of the key's UTF-8, as 16 hex digits: names apart keys that share a long prefix. */
export function hash64(key: string): string {
  let h = 0xcbf29ce484222325n
  for (const b of encoder.encode(key)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n)
  return h.toString(16).padStart(16, '0')
}

/** The file name stem of a key (see the module comment). */
export function encodeKey(key: string): string {
  const full = encodeFull(key)
  if (full.length <= MAX_STEM) return full
  let cut = LONG_PREFIX
  // Do not split an escape: `%` needs its two digits, `!` its letter.
  const pct = full.lastIndexOf('%', cut - 1)
  if (pct >= 0 && pct > cut - 3) cut = pct
  if (full[cut - 1] === '!') cut--
  let prefix = full.slice(0, cut)
  // The cut may leave a trailing `.`, which Windows would trim.
  if (prefix.endsWith('.')) prefix = prefix.slice(0, -1) + '%2e'
  return `${prefix}~${hash64(key)}`
}

/** Whether a stem is the long form (its key lives in the collection file). */
export function isLongStem(stem: string): boolean {
  return stem.includes('~')
}

/**
 * The key of a stem, or undefined when the stem is not the canonical encoding of any key (a
 * file someone else put there). Long stems are not decoded: look them up.
 */
export function decodeStem(stem: string): string | undefined {
  if (stem.length === 0 || isLongStem(stem)) return undefined
  const bytes: number[] = []
  for (let i = 0; i < stem.length; i++) {
    const c = stem.charCodeAt(i)
    if (c === 0x21) {
      const next = stem.charCodeAt(++i)
      if (!(next >= 0x61 && next <= 0x7a)) return undefined
      bytes.push(next - 0x20)
    } else if (c === 0x25) {
      const pair = stem.slice(i + 1, i + 3)
      if (!/^[0-9a-f]{2}$/.test(pair)) return undefined
      bytes.push(parseInt(pair, 16))
      i += 2
    } else if (keptByte(c)) bytes.push(c)
    else return undefined
  }
  let key: string
  try {
    key = decoder.decode(new Uint8Array(bytes))
  } catch {
    return undefined
  }
  return encodeFull(key) === stem ? key : undefined
}

/** The file name of a record. */
export function recordFileName(key: string): string {
  return encodeKey(key) + RECORD_SUFFIX
}

/** The folder name of a collection (collection names are short: never the long form). */
export function collectionFolderName(collection: string): string {
  return encodeKey(collection)
}
