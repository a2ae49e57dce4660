import { describe, expect, it, afterAll } from 'vitest'
import { cleanup, expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome } from '../helpers/cli.js'

/**
 * Issue 23, rough edges: `kitsync set c k hello` said only `Unexpected token 'h'` (the user
 * meant the string "hello"), and `kitsync reset` with no terminal to ask on (stdin closed, as in
 * a script) failed with ABORTED "reset cancelled" though nobody cancelled anything.
 */

afterAll(cleanup)

describe('hints where a new user goes wrong', () => {
  it('set of a bare word: INVALID_JSON that says how to quote it', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    expect(expectCliError(await kitsync(home, ['set', 'c', 'k', 'hello']), 'INVALID_JSON', 2)).toContain(`use '"hello"'`)
    expect(expectCliError(await kitsync(home, ['append', 'journal', 'dark mode']), 'INVALID_JSON', 2)).toContain(`use '"dark mode"'`)
    // Not a bare word: no quoting hint, only the reason.
    expect(expectCliError(await kitsync(home, ['set', 'c', 'k', '{bad']), 'INVALID_JSON', 2)).not.toContain('use ')
    expect(await kitsyncJson(home, ['list'])).toEqual([])
  })

  it('reset with no terminal and no --yes: INVALID_ARGUMENT saying "use --yes"; nothing reset', async () => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    const r = await kitsync(home, ['reset'])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/kitsync: INVALID_ARGUMENT: .*use --yes.*\n$/)
    const ok = await kitsyncOk(home, ['reset', '--yes'])
    expect(ok).toContain('sync state reset')
  })
})
