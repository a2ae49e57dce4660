import type { CliIO } from './context.js'

/** The CLI's IO on a real process: stdout/stderr, stdin, and SIGINT/SIGTERM. */
export function processIO(): CliIO {
  return {
    out: (text) => {
      if (text !== '') process.stdout.write(text)
    },
    err: (text) => {
      if (text !== '') process.stderr.write(text)
    },
    env: process.env,
    stdinIsTTY: process.stdin.isTTY === true,
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    readStdin: async () => {
      const chunks: Buffer[] = []
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks).toString('utf8')
    },
    prompt: async (question) => {
      const { createInterface } = await import('node:readline')
      const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: false })
      try {
        return await new Promise<string>((resolve) => {
          rl.once('close', () => resolve(''))
          rl.question(question, (answer) => resolve(answer))
        })
      } finally {
        rl.close()
      }
    },
    interrupted: () =>
      new Promise((resolve) => {
        const on = (signal: string): void => {
          process.off('SIGINT', on)
          process.off('SIGTERM', on)
          resolve(signal)
        }
        process.on('SIGINT', on)
        process.on('SIGTERM', on)
      }),
  }
}
