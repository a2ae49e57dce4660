// Reading a peer's /metrics in tests as Prometheus reads it.

/**
 * Prometheus text exposition: every sample line parsed, or a failure naming the bad line. Values
 * are read as Prometheus reads them (Go's ParseFloat: NaN and Inf in any case; prom-client writes "Nan").
 */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (\S+)(?: -?\d+)?$/.exec(line)
    const value = m?.[2] ?? ''
    const special = /^[+-]?(nan|inf)$/i.exec(value)
    if (m === null || (special === null && !Number.isFinite(Number(value)))) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`)
    samples.set(m[1] as string, special === null ? Number(value) : special[1]?.toLowerCase() === 'nan' ? NaN : value.startsWith('-') ? -Infinity : Infinity)
  }
  return samples
}
