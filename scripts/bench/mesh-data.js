// Records of the "mesh" benchmark's catch-up workload: the same deterministic data for kitsync
// and y-websocket. Each record is about 1 KB of JSON with a few fields and pseudo-random text
// (so that nothing on the way compresses it to nothing).

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.'

/** Record `i`: { key, value, size } where size is the JSON byte length of { [key]: value }. */
export function jsonRecord(i) {
  let seed = (i + 1) * 2654435761
  const rand = () => {
    // xorshift32
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) / 4294967296
  }
  let text = ''
  for (let c = 0; c < 900; c++) text += ALPHABET[Math.floor(rand() * ALPHABET.length)]
  const key = 'rec' + String(i).padStart(6, '0')
  const value = { id: i, title: `Record ${i}`, tags: ['bench', `group-${i % 17}`], score: Math.round(rand() * 1e6) / 100, done: i % 3 === 0, text }
  return { key, value, size: Buffer.byteLength(JSON.stringify({ [key]: value })) }
}
