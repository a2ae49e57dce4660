import { formatBytes } from './commands/stats.js'

/**
 * A one-line progress bar on a terminal (stderr), redrawn in place with a carriage return. The
 * sync:progress events it draws come at most every 200 ms per exchange, so it draws each one.
 * Not for pipes or files: there the events themselves (`watch --events`, the library) serve.
 */

const WIDTH = 24

export interface ProgressFigures {
  done: number
  total: number
  bytes: number
}

/** `label [#########---------------] 3/8 collections, 1.2 MB` */
export function renderProgress(label: string, p: ProgressFigures): string {
  const filled = p.total === 0 ? WIDTH : Math.min(WIDTH, Math.round((p.done / p.total) * WIDTH))
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${p.done}/${p.total} collections, ${formatBytes(p.bytes)}`
}

export class ProgressBar {
  private width = 0

  constructor(
    private readonly write: (text: string) => void,
    private readonly label: string,
  ) {}

  update(p: ProgressFigures): void {
    const line = renderProgress(this.label, p)
    // Pad over a longer line drawn before (the byte figure can shrink: kB -> MB).
    this.write(`\r${line.padEnd(this.width)}`)
    this.width = line.length
  }

  /** End the line the bar is on, if one was drawn. */
  end(): void {
    if (this.width > 0) this.write('\n')
    this.width = 0
  }
}
