import { Command } from 'commander'
import { describe, expect, it } from 'vitest'
import type { CliIO } from '../../src/cli/context.js'
import { buildProgram, COMMAND_MODULES, commandOf } from '../../src/cli/main.js'
import { YOUNG_GENERATION_FLAG, youngGenerationFlag } from '../../src/cli/young-generation.js'

const io: CliIO = {
  out: () => undefined,
  err: () => undefined,
  env: {},
  readStdin: async () => '',
  prompt: async () => '',
  interrupted: () => new Promise(() => undefined),
}

describe('CLI start-up: one command module per run', () => {
  it('the table names every top-level command of its module, in help order', async () => {
    const registered: string[][] = []
    for (const module of COMMAND_MODULES) {
      const program = new Command('kitsync')
      ;(await module.load()).register(program, io)
      registered.push(program.commands.map((c) => c.name()))
    }
    expect(registered).toEqual(COMMAND_MODULES.map((m) => m.commands))
    const all = await buildProgram(io)
    expect(all.commands.map((c) => c.name())).toEqual(COMMAND_MODULES.flatMap((m) => m.commands))
  })

  it('finds the command after the global options', () => {
    expect(commandOf(['--home', '/tmp/h', '--json', 'peer', 'start'])).toBe('peer')
    expect(commandOf(['--home=/tmp/h', 'get', 'notes'])).toBe('get')
    expect(commandOf(['--json'])).toBeUndefined()
    expect(commandOf(['--help'])).toBeUndefined()
  })

  it('registers only the command that runs, and every command otherwise', async () => {
    expect((await buildProgram(io, ['--home', 'x', 'add', 'w', 'k', 'symbols', 'A'])).commands.map((c) => c.name())).toEqual(['add', 'remove'])
    for (const argv of [[], ['--help'], ['help', 'get'], ['nope']]) {
      expect((await buildProgram(io, argv)).commands).toHaveLength(COMMAND_MODULES.flatMap((m) => m.commands).length)
    }
  })
})

describe('CLI start-up: V8 young generation', () => {
  it('is kept at its initial size unless the user sized it', () => {
    expect(youngGenerationFlag([], undefined)).toBe(YOUNG_GENERATION_FLAG)
    expect(youngGenerationFlag(['--enable-source-maps'], '--max-old-space-size=512')).toBe(YOUNG_GENERATION_FLAG)
    expect(youngGenerationFlag(['--max-semi-space-size=16'], undefined)).toBeUndefined()
    expect(youngGenerationFlag([], '--trace-gc  --max_semi_space_size=8')).toBeUndefined()
    expect(youngGenerationFlag(['--min-semi-space-size=4'], '')).toBeUndefined()
    expect(youngGenerationFlag(['--semi-space-growth-factor=2'], undefined)).toBeUndefined()
  })
})
