import { describe, expect, it } from 'vitest'
import { openBrowser } from '../../src/cli/open-browser.js'

const URL_ = 'http://127.0.0.1:4772/login?code=x'

describe('openBrowser', () => {
  it('runs $BROWSER with the URL and says whether it worked', async () => {
    expect(await openBrowser(URL_, { BROWSER: '/bin/true' })).toBe(true)
    expect(await openBrowser(URL_, { BROWSER: '/bin/false' })).toBe(false)
    expect(await openBrowser(URL_, { BROWSER: '/nonexistent/browser' })).toBe(false)
  })

  it('opens nothing with BROWSER=none, or on Linux without a desktop session or xdg-open', async () => {
    expect(await openBrowser(URL_, { BROWSER: 'none', DISPLAY: ':0', PATH: '/usr/bin:/bin' }, 'linux')).toBe(false)
    expect(await openBrowser(URL_, { PATH: '/usr/bin:/bin' }, 'linux')).toBe(false)
    expect(await openBrowser(URL_, { DISPLAY: ':0', PATH: '' }, 'linux')).toBe(false)
    expect(await openBrowser(URL_, {}, 'win32')).toBe(false)
  })
})
