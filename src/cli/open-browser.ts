import { spawn } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { delimiter, join } from 'node:path'

/**
 * Open a URL in the user's browser: $BROWSER if set ("none": do not), else `open` on macOS, or
 * `xdg-open` on Linux when a desktop session is there (DISPLAY or WAYLAND_DISPLAY) and it is on
 * the PATH. Resolves false when there is no way to (the caller prints the URL instead), or when
 * the opener fails within a moment; true once it runs.
 */
export async function openBrowser(url: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): Promise<boolean> {
  const command = await opener(env, platform)
  if (command === undefined) return false
  return new Promise((resolve) => {
    const child = spawn(command, [url], { stdio: 'ignore', detached: true, env })
    // Some openers stay until the browser exits: a failure shows within a moment, success need not end.
    const timer = setTimeout(() => {
      child.unref()
      resolve(true)
    }, 2000)
    child.once('error', () => {
      clearTimeout(timer)
      resolve(false)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code === 0)
    })
  })
}

async function opener(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): Promise<string | undefined> {
  const chosen = env.BROWSER?.trim()
  if (chosen !== undefined && chosen !== '') return chosen === 'none' ? undefined : chosen
  if (platform === 'darwin') return 'open'
  if (platform !== 'linux' && platform !== 'freebsd' && platform !== 'openbsd') return undefined
  if ((env.DISPLAY ?? '') === '' && (env.WAYLAND_DISPLAY ?? '') === '') return undefined
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const file = join(dir, 'xdg-open')
    if (
      await access(file, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return file
  }
  return undefined
}
