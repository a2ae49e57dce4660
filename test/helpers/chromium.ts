/**
 * A real headless Chromium for the dashboard's end-to-end tests: Debian's `chromium` package
 * (no browser download is possible here) driven by playwright-core. The set-up installs the
 * package with apt-get when it is missing and this runs as root (`.ci/run` does it first in
 * CI); when it cannot, the tests skip with the reason printed.
 */
import { execFile } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { promisify } from 'node:util'
import type { Browser } from 'playwright-core'

const run = promisify(execFile)

export const CHROMIUM = process.env.KITSYNC_CHROMIUM ?? '/usr/bin/chromium'
/** apt-get can take minutes on a cold cache. */
const INSTALL_TIMEOUT_MS = 10 * 60_000

const executable = (file: string): Promise<boolean> =>
  access(file, constants.X_OK).then(
    () => true,
    () => false,
  )

/** Undefined when Chromium and playwright-core are there (installing Chromium if it can), else why not. */
export async function chromiumSkipReason(): Promise<string | undefined> {
  try {
    await import('playwright-core')
  } catch (err) {
    return `playwright-core is not installed (npm ci installs it): ${(err as Error).message}`
  }
  if (await executable(CHROMIUM)) return undefined
  if (process.platform !== 'linux') return `no Chromium at ${CHROMIUM}, and installing it needs Debian's apt-get (running on ${process.platform})`
  if (process.getuid?.() !== 0)
    return `no Chromium at ${CHROMIUM}; install Debian's chromium package (apt-get install chromium) or run as root to let the test set-up do it`
  if (!(await executable('/usr/bin/apt-get'))) return `no Chromium at ${CHROMIUM} and no apt-get to install it`
  if (process.env.CI !== undefined) return `no Chromium at ${CHROMIUM}: .ci/run installs it with apt-get, and that failed (see its log)`
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const install = () => run('apt-get', ['install', '-y', 'chromium'], { env, timeout: INSTALL_TIMEOUT_MS })
  try {
    await install().catch(async () => {
      await run('apt-get', ['update'], { env, timeout: INSTALL_TIMEOUT_MS })
      await install()
    })
  } catch (err) {
    return `no Chromium at ${CHROMIUM} and apt-get could not install it: ${(err as Error).message.split('\n')[0] ?? ''}`
  }
  return (await executable(CHROMIUM)) ? undefined : `apt-get installed chromium but ${CHROMIUM} is not there`
}

/**
 * Headless Chromium with nothing that reaches outside the machine: no background networking,
 * component updates, sync or QUIC (the machine's network is closed; the tests use loopback only).
 */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-default-apps',
      '--disable-extensions',
    ],
  })
}
