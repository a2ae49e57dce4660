/** Milliseconds per unit of a written duration (`90s`, `30m`, `2h`, `3d`, `1w`): one table for every parser. */
export const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const

export type DurationUnit = keyof typeof UNIT_MS
