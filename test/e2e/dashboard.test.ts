/**
 * The web dashboard end to end: real peers through the CLI on loopback, the page in a real
 * headless Chromium (Debian's chromium, driven by playwright-core), logged in the way a user is,
 * with the URL `kitsync dashboard` makes. Skips with the reason printed when Chromium cannot be
 * had (test/helpers/chromium.ts).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { makeLoginCode, sessionCookieName } from '../../src/daemon/dashboard-login.js'
import { chromiumSkipReason, launchChromium } from '../helpers/chromium.js'
import { expectCliError, kitsync, kitsyncJson, kitsyncOk, makeHome, makeTempDir, spawnKitsync, stopProc, waitUntil, type RunningPeer } from '../helpers/cli.js'
import { devicesOfTest, NET } from '../helpers/devices.js'
import { announceSkip } from '../helpers/faults.js'

const skip = announceSkip('test/e2e/dashboard.test.ts', await chromiumSkipReason())
const { peer, invite, forget } = devicesOfTest()

const UI_TIMEOUT = 20_000

/** What the functions run in the page use of it (the tests are typed without the DOM library). */
interface PageGlobals {
  marker?: number
  document: {
    cookie: string
    createElement(tag: 'canvas'): {
      width: number
      height: number
      getContext(kind: '2d'): {
        drawImage(image: unknown, x: number, y: number, w: number, h: number): void
        getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray }
      }
    }
  }
}

interface Dashboard {
  url: string
  token: string
  login: string
}

const dashboard = (home: string): Promise<Dashboard> => kitsyncJson<Dashboard>(home, ['dashboard'])

let browser: Browser
let shots: string
const contexts: BrowserContext[] = []

beforeAll(async () => {
  if (skip) return
  browser = await launchChromium()
  // KITSYNC_DASHBOARD_SHOTS=DIR keeps the screenshots there to look at; else a temporary folder.
  shots = process.env.KITSYNC_DASHBOARD_SHOTS ?? (await makeTempDir('ks-dash-shots-'))
})
afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close()
})
afterAll(async () => {
  await browser?.close()
})

/** A fresh browser profile (no cookies), with page errors failing the test. */
async function newPage(): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext()
  contexts.push(context)
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  return { page, errors }
}

/** Log the page in through `kitsync dashboard`'s URL and wait for the dashboard to render. */
async function openDashboard(home: string): Promise<{ page: Page; errors: string[]; d: Dashboard }> {
  const d = await dashboard(home)
  const { page, errors } = await newPage()
  const res = await page.goto(d.login)
  expect(res?.status()).toBe(200)
  expect(page.url()).toBe(d.url) // redirected: the code is not left in the address bar
  await page.locator('#live.live-live').waitFor({ timeout: UI_TIMEOUT })
  return { page, errors, d }
}

async function screenshot(page: Page, name: string): Promise<Buffer> {
  const file = join(shots, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  const png = await readFile(file)
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG')
  expect(png.byteLength).toBeGreaterThan(10_000)
  return png
}

async function stop(p: RunningPeer): Promise<void> {
  await stopProc(p.proc)
  forget(p)
}

async function until(home: string, collection: string, key: string, expected: unknown): Promise<void> {
  await waitUntil(
    async () => {
      const r = await kitsync(home, ['get', collection, key, '--json'])
      return r.code === 0 && isDeepStrictEqual(JSON.parse(r.stdout), expected) ? true : undefined
    },
    UI_TIMEOUT,
    `${collection}/${key} = ${JSON.stringify(expected)} on ${home}`,
  )
}

/** A, B paired and both running (B named "laptop"). */
async function pairedDevices(): Promise<{ ha: string; hb: string; pa: RunningPeer; pb: RunningPeer }> {
  const [ha, hb] = [await makeHome(), await makeHome()]
  const pa = await peer(ha)
  await kitsyncOk(hb, ['join', await invite(ha), '--name', 'laptop', ...NET])
  const pb = await peer(hb)
  return { ha, hb, pa, pb }
}

describe.skipIf(skip)('the web dashboard in Chromium', () => {
  it('shows nothing without the login code (401), takes a code once, and refuses a foreign Origin and cross-site forms', async () => {
    const home = await makeHome()
    const p = await peer(home)
    const d = await dashboard(home)
    const port = Number(new URL(d.url).port)
    expect(d.login).toMatch(new RegExp(`^${d.url.replace(/[./]/g, '\\$&')}login\\?code=v1\\.[0-9a-z]+\\.[\\w-]{22}\\.[\\w-]{43}$`))

    // No code: the page, its scripts and the API are 401 in the browser, and so are bad codes.
    const { page: stranger } = await newPage()
    const pid = p.started.pid
    for (const path of [
      '',
      'ui/app.js',
      'ui/vendor/preact.js',
      'api/v1/status',
      'api/v1/events',
      'login?code=nonsense',
      `login?code=${makeLoginCode(d.token, pid + 1)}`, // made for another peer process
      `login?code=${makeLoginCode(d.token, pid, Date.now() - 3 * 60_000)}`, // expired
      `login?code=${makeLoginCode('x'.repeat(43), pid)}`, // not made with this token
    ]) {
      const res = await stranger.goto(d.url + path)
      expect(res?.status(), path).toBe(401)
      expect(await res?.text()).not.toContain(p.started.deviceId)
    }
    expect(await stranger.context().cookies()).toEqual([])

    // The code logs in once: an HttpOnly, SameSite=Strict cookie for this port, the code gone from the URL.
    const { page, errors } = await newPage()
    expect((await page.goto(d.login))?.status()).toBe(200)
    expect(page.url()).toBe(d.url)
    await page.locator('#collections').waitFor({ timeout: UI_TIMEOUT })
    const cookies = await page.context().cookies()
    expect(cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path }))).toEqual([
      { name: sessionCookieName(port), httpOnly: true, sameSite: 'Strict', path: '/' },
    ])
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie)).toBe('') // scripts cannot read it
    expect((await stranger.goto(d.login))?.status()).toBe(401) // used up
    const session = `${sessionCookieName(port)}=${cookies[0]?.value ?? ''}`

    // The session stands in for the token, with the CSRF rule for changes.
    const api = (method: string, headers: Record<string, string>, body?: unknown) =>
      fetch(`${d.url}api/v1/${method}`, { method: body === undefined ? 'GET' : 'POST', headers: { Cookie: session, ...headers }, body: JSON.stringify(body) })
    expect((await api('status', {})).status).toBe(200)
    const write = { collection: 'notes', key: 'k', value: 1 }
    const noOrigin = await api('set', {}, write)
    expect(noOrigin.status).toBe(403)
    expect(((await noOrigin.json()) as { error: { code: string } }).error.code).toBe('PERMISSION_DENIED')
    expect((await api('set', { Origin: `http://127.0.0.1:${port + 1}` }, write)).status).toBe(403)
    expect((await api('set', { Origin: 'http://evil.example' }, write)).status).toBe(403)
    expect((await api('status', { Origin: 'http://evil.example' })).status).toBe(403)
    expect(JSON.parse(await kitsyncOk(home, ['list', '--json']))).toEqual([]) // none of them wrote
    expect((await api('set', { Origin: d.url.slice(0, -1) }, write)).status).toBe(200)
    expect((await api('set', { 'X-Kitsync-Csrf': '1' }, { ...write, value: 2 })).status).toBe(200)
    await until(home, 'notes', 'k', 2)

    // A page on another port of 127.0.0.1 is same-site, so the browser sends the Strict cookie
    // with its form: the Origin check refuses it, and script reads are blocked (no CORS).
    const evil = await serveEvilPage(d.url)
    try {
      const { page: victim } = await newPage()
      await victim.context().addCookies(cookies)
      const submitted = victim.waitForResponse((r) => r.url() === `${d.url}api/v1/set`)
      await victim.goto(evil.url)
      const refused = await submitted
      expect(refused.status()).toBe(403)
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('PERMISSION_DENIED')
      expect((await refused.request().allHeaders()).cookie).toContain(session) // the browser did send the session
      expect(await evil.readResult).toBe('blocked')
    } finally {
      evil.server.close()
    }
    await until(home, 'notes', 'k', 2)
    expect(errors).toEqual([])
  })

  it('a restart of the peer ends the browser session: the API says 401 and the page says to log in again', async () => {
    const home = await makeHome()
    const port = await freePort()
    let p = await peer(home, ['--http-port', String(port)])
    const { page, errors, d } = await openDashboard(home)
    const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
    expect((await fetch(`${d.url}api/v1/status`, { headers: { Cookie: cookie } })).status).toBe(200)
    await stop(p)
    p = await peer(home, ['--http-port', String(port)])
    expect((await dashboard(home)).url).toBe(d.url) // the same origin, a new process
    expect((await fetch(`${d.url}api/v1/status`, { headers: { Cookie: cookie } })).status).toBe(401)
    await page.locator('#signed-out').waitFor({ timeout: UI_TIMEOUT })
    expect(await page.locator('#signed-out').textContent()).toContain('kitsync dashboard')
    // A new login URL works in the same browser.
    expect((await page.goto((await dashboard(home)).login))?.status()).toBe(200)
    await page.locator('#live.live-live').waitFor({ timeout: UI_TIMEOUT })
    // The page met refused connections and 401s while the peer restarted (Chromium logs each); nothing else.
    expect(errors.filter((e) => !/^Failed to load resource: (net::ERR_|the server responded with a status of 401)/.test(e))).toEqual([])
  })

  it('lists the devices and collections, and a change made on another device appears without a reload', async () => {
    const { ha, hb } = await pairedDevices()
    const { page, errors } = await openDashboard(ha)
    const laptop = page.locator('#devices tr', { hasText: 'laptop' })
    await laptop.locator('.state', { hasText: /^connected$/ }).waitFor({ timeout: UI_TIMEOUT })
    expect(await page.locator('#devices tbody tr').count()).toBe(2)
    expect(await page.locator('#devices tr.state-this-device').count()).toBe(1)
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).marker = 42))

    await kitsyncOk(hb, ['set', 'notes', 'from-laptop', '{"text":"written on the laptop"}'])
    const change = page.locator('#changes .change[data-key="from-laptop"]')
    await change.waitFor({ timeout: UI_TIMEOUT })
    expect(await change.textContent()).toContain('from another device')
    expect(await change.textContent()).toContain('written on the laptop')
    await page.locator('#collections tr[data-collection="notes"] .records', { hasText: /^1$/ }).waitFor({ timeout: UI_TIMEOUT })
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).marker)).toBe(42) // the same page: no reload
    await laptop
      .locator('td', { hasText: /s ago$/ })
      .first()
      .waitFor({ timeout: UI_TIMEOUT }) // last sync shown

    await screenshot(page, 'devices-and-change')
    for (const id of ['#devices', '#collections', '#conflicts', '#pairing', '#changes', '#audit', '#live'])
      expect(await page.locator(id).isVisible(), id).toBe(true)
    expect(await page.locator('#pause').isEnabled()).toBe(true)
    expect(await page.locator('#pause').textContent()).toBe('Pause sync')
    expect(errors).toEqual([])
  })

  it('pauses and resumes sync from the page; the CLI sees it, and a pause from the CLI shows without a reload', async () => {
    const { ha, hb } = await pairedDevices()
    const { page, errors } = await openDashboard(ha)
    const button = page.locator('#pause')
    const paused = async (home: string): Promise<boolean> => (await kitsyncJson<{ paused?: unknown }>(home, ['status', '--json'])).paused !== undefined

    await button.click()
    await page.locator('#pause[data-paused="true"]', { hasText: 'Resume sync' }).waitFor({ timeout: UI_TIMEOUT })
    expect(await paused(ha)).toBe(true)
    expect(await kitsyncOk(ha, ['status'])).toContain('paused since')
    expect(await page.locator('#paused').textContent()).toContain('until resumed')
    await screenshot(page, 'sync-paused')
    // Paused: the laptop's row says so, and a write here is pending for it.
    const laptop = page.locator('#devices tr', { hasText: 'laptop' })
    await laptop.locator('.sync', { hasText: /^paused$/ }).waitFor({ timeout: UI_TIMEOUT })
    await kitsyncOk(ha, ['set', 'notes', 'from-a-paused', '"a"'])
    await laptop.locator('.pending-count', { hasText: /^[1-9]\d*$/ }).waitFor({ timeout: UI_TIMEOUT })
    const pendingNow = (await kitsyncJson<{ sync: { devices: { pending: number }[] } }>(ha, ['status', '--json'])).sync.devices[0]?.pending
    expect((await laptop.locator('.pending-count').textContent())?.trim()).toBe(String(pendingNow))
    // A write on the laptop is not exchanged, and `sync now` says why.
    await kitsyncOk(hb, ['set', 'notes', 'while-paused', '"b"'])
    expectCliError(await kitsync(ha, ['sync', 'now', '--timeout', '2']), 'SYNC_PAUSED', 7)
    expect((await kitsync(ha, ['get', 'notes', 'while-paused', '--json'])).code).not.toBe(0)

    // Resumed and paused from the CLI: the page follows through the event stream.
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).marker = 7))
    await kitsyncOk(ha, ['sync', 'resume'])
    await page.locator('#pause[data-paused="false"]', { hasText: 'Pause sync' }).waitFor({ timeout: UI_TIMEOUT })
    expect(await page.locator('#paused').count()).toBe(0)
    await kitsyncOk(ha, ['sync', 'pause', '--for', '1h'])
    await page.locator('#paused', { hasText: /for \d+ min more/ }).waitFor({ timeout: UI_TIMEOUT })
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).marker)).toBe(7) // no reload

    // Resume from the page: the CLI sees it, and the laptop's write arrives.
    await button.click()
    await page.locator('#pause[data-paused="false"]').waitFor({ timeout: UI_TIMEOUT })
    expect(await paused(ha)).toBe(false)
    await until(ha, 'notes', 'while-paused', 'b')
    await until(hb, 'notes', 'from-a-paused', 'a')
    await laptop.locator('.pending-count', { hasText: /^0$/ }).waitFor({ timeout: UI_TIMEOUT })
    await laptop.locator('.sync', { hasText: /^idle$/ }).waitFor({ timeout: UI_TIMEOUT })
    expect(errors).toEqual([])
  })

  it('resolves conflicts from the page (one version kept, one value written) and the other device sees both', async () => {
    const { ha, hb, pb } = await pairedDevices()
    await kitsyncOk(ha, ['collection', 'set', 'alerts', '--policy', 'ask'])
    await kitsyncOk(ha, ['set', 'alerts', 'x', '{"symbol":"AAPL","price":100}'])
    await kitsyncOk(ha, ['set', 'alerts', 'y', '{"symbol":"MSFT","price":300}'])
    await until(hb, 'alerts', 'y', { symbol: 'MSFT', price: 300 })
    await stop(pb)
    // Concurrent offline edits: B's store directly, A through its peer.
    await kitsyncOk(hb, ['set', 'alerts', 'x', '{"symbol":"AAPL","price":140}'])
    await kitsyncOk(hb, ['set', 'alerts', 'y', '{"symbol":"MSFT","price":310}'])
    await kitsyncOk(ha, ['set', 'alerts', 'x', '{"symbol":"AAPL","price":150}'])
    await kitsyncOk(ha, ['set', 'alerts', 'y', '{"symbol":"MSFT","price":320}'])
    const { page, errors } = await openDashboard(ha)
    await peer(hb)

    const conflicts = page.locator('#conflicts .conflict')
    await waitUntil(async () => ((await conflicts.count()) === 2 ? true : undefined), UI_TIMEOUT, 'two conflicts on the page')
    await page.locator('#collections tr[data-collection="alerts"] .conflicts', { hasText: /^2$/ }).waitFor({ timeout: UI_TIMEOUT })
    await screenshot(page, 'conflicts')

    // x: keep the laptop's version.
    const x = page.locator('#conflicts .conflict', { hasText: 'alerts/x' })
    const laptopVersion = x.locator('.version', { hasText: '140' })
    expect(await laptopVersion.locator('.who').textContent()).toBe('laptop')
    await laptopVersion.locator('button.take').click()
    await until(hb, 'alerts', 'x', { symbol: 'AAPL', price: 140 })

    // y: write another value.
    const y = page.locator('#conflicts .conflict', { hasText: 'alerts/y' })
    await y.locator('summary').click()
    await y.locator('textarea.edit-value').fill('{"symbol":"MSFT","price":315,"note":"settled in the browser"}')
    await y.locator('button.save').click()
    await until(hb, 'alerts', 'y', { symbol: 'MSFT', price: 315, note: 'settled in the browser' })
    await until(ha, 'alerts', 'y', { symbol: 'MSFT', price: 315, note: 'settled in the browser' })

    await waitUntil(async () => ((await conflicts.count()) === 0 ? true : undefined), UI_TIMEOUT, 'no conflict left on the page')
    await waitUntil(
      async () => ((await kitsyncJson<unknown[]>(hb, ['conflicts', '--json'])).length === 0 ? true : undefined),
      UI_TIMEOUT,
      'no conflict left on the laptop',
    )
    await page.locator('#audit .audit-entry[data-type="conflict"]').first().waitFor({ timeout: UI_TIMEOUT })
    await screenshot(page, 'conflicts-resolved')
    expect(errors).toEqual([])
  })

  it('pairs a new device from the page: QR code on screen, the confirm code compared, a real kitsync join', async () => {
    const ha = await makeHome()
    await peer(ha)
    const { page, errors } = await openDashboard(ha)
    expect(await page.locator('#pair-confirm').isChecked()).toBe(true)
    await page.locator('#pair-start').click()
    const token = (await page.locator('#pair-token').textContent({ timeout: UI_TIMEOUT })) ?? ''
    expect(token).toMatch(/^\S{40,}$/)
    const qr = page.locator('#pair-qr')
    await qr.waitFor({ timeout: UI_TIMEOUT })
    await waitUntil(
      async () => ((await qr.evaluate((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth > 0)) ? true : undefined),
      UI_TIMEOUT,
      'the QR image',
    )
    // Not blank: a QR code is about half dark modules, in a light quiet zone.
    const dark = await qr.evaluate((img) => {
      const canvas = (globalThis as unknown as PageGlobals).document.createElement('canvas')
      canvas.width = canvas.height = 200
      const ctx = canvas.getContext('2d')
      ctx.drawImage(img, 0, 0, 200, 200)
      const pixels = ctx.getImageData(0, 0, 200, 200).data
      let n = 0
      for (let i = 0; i < pixels.length; i += 4) if ((pixels[i] ?? 255) < 128) n++
      return n / (200 * 200)
    })
    expect(dark).toBeGreaterThan(0.25)
    expect(dark).toBeLessThan(0.75)
    const qrShot = await qr.screenshot({ path: join(shots, 'pairing-qr.png') })
    expect(qrShot.byteLength).toBeGreaterThan(1000)
    await screenshot(page, 'pairing-token')

    // The new device joins with the token copied from the page; its screen shows a code.
    const hc = await makeHome()
    const joining = spawnKitsync(hc, ['join', token, '--name', 'phone', ...NET])
    const code = await waitUntil(
      async () => /confirmation code: (\S+)/.exec(joining.stderr)?.[1],
      UI_TIMEOUT,
      `the join's confirmation code\n${joining.transcript()}`,
    )
    await page.locator('#pair-pending').waitFor({ timeout: UI_TIMEOUT })
    expect(await page.locator('#pair-code').textContent()).toBe(code)
    expect(await page.locator('#pair-pending .who').textContent()).toBe('phone')
    await screenshot(page, 'pairing-confirm')
    // The answer to approve is held until the page has shown device:joined (as on a loaded
    // machine, where the join ends first): once it arrives, the outcome still says joined.
    await page.route('**/api/v1/approve', async (route) => {
      const answer = await route.fetch()
      await page.locator('#pair-outcome', { hasText: 'phone joined' }).waitFor({ timeout: UI_TIMEOUT })
      await route.fulfill({ response: answer })
    })
    const approved = page.waitForEvent('requestfinished', (r) => r.url().endsWith('/api/v1/approve'))
    await page.locator('#pair-approve').click()
    expect((await (await approved).response())?.status()).toBe(200)
    // The page has read the answer (its body is in); a frame later the outcome is what the page settled on.
    await page.evaluate(
      () => new Promise((resolve) => (globalThis as unknown as { requestAnimationFrame(f: () => void): void }).requestAnimationFrame(() => resolve(0))),
    )
    expect(await page.locator('#pair-outcome').textContent()).toBe('phone joined the workspace.')
    expect(await joining.waitForExit(UI_TIMEOUT * 2), joining.transcript()).toEqual({ code: 0, signal: null })
    await page.locator('#pair-outcome', { hasText: 'phone joined' }).waitFor({ timeout: UI_TIMEOUT })
    await page.locator('#devices tr', { hasText: 'phone' }).waitFor({ timeout: UI_TIMEOUT })
    expect((await kitsyncJson<{ name: string }[]>(ha, ['devices'])).map((x) => x.name)).toContain('phone')
    await page.locator('#audit .audit-entry', { hasText: 'phone' }).first().waitFor({ timeout: UI_TIMEOUT })
    await screenshot(page, 'pairing-done')
    expect(errors).toEqual([])
  })
})

/** A TCP port free on 127.0.0.1 now (for a peer that must keep its HTTP port across a restart). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * A page on another port of 127.0.0.1 (same site, other origin) that posts a form to the
 * dashboard's API and tries to read it with fetch; it reports what the read got.
 */
async function serveEvilPage(target: string): Promise<{ server: Server; url: string; readResult: Promise<string> }> {
  let report: (result: string) => void = () => undefined
  const readResult = new Promise<string>((resolve) => (report = resolve))
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/report?')) {
      report(new URL(req.url, 'http://x').searchParams.get('result') ?? '')
      res.end()
      return
    }
    res.writeHead(200, { 'Content-Type': 'text/html' })
    res.end(`<!doctype html><form id="f" method="POST" action="${target}api/v1/set" enctype="text/plain">
<input name='{"collection":"notes","key":"k","value":666,"x":"' value='"}'></form>
<script>
fetch(${JSON.stringify(target + 'api/v1/status')}, { credentials: 'include' })
  .then((r) => r.text(), () => 'blocked')
  .then((result) => fetch('/report?result=' + encodeURIComponent(result)))
  .finally(() => document.getElementById('f').submit())
</script>`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, readResult }
}
