import type { Command } from 'commander'
import { ControlClient } from '../../api/control-client.js'
import { KitsyncError } from '../../core/errors.js'
import { loginUrl, LOGIN_CODE_TTL_MS } from '../../daemon/dashboard-login.js'
import { homePaths, resolveHome } from '../../store/home.js'
import { httpFiles, readHttpInfo, readHttpToken } from '../../store/http-files.js'
import { example, globals, print, type CliIO } from '../context.js'
import { openBrowser } from '../open-browser.js'

/**
 * `kitsync dashboard`: open the running peer's web dashboard in the browser, logged in by a
 * one-time code in the URL (docs/HTTP-API.md), or print that URL (--print, or when there is no
 * browser to open). --json prints {url, token, login} for apps and scripts: the token is read
 * from HOME/http.token and printed only with --json.
 */
export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('dashboard')
      .description(
        'open the web dashboard of the running peer in the browser (or print its one-time login URL); --json prints {"url", "token", "login"}: the HTTP API\'s URL, the token every request needs as Authorization: Bearer TOKEN, and a login URL',
      )
      .option('--print', `print the login URL instead of opening a browser (it works once, within ${LOGIN_CODE_TTL_MS / 60_000} minutes)`),
    'kitsync dashboard',
    'kitsync dashboard --print    # http://127.0.0.1:4772/login?code=... : open it in a browser on this machine',
    'kitsync dashboard --json     # {"url": "http://127.0.0.1:4772/", "token": "...", "login": "..."}',
  ).action(async (options: { print?: boolean }, cmd: Command) => {
    const opts = globals(cmd)
    const paths = homePaths(resolveHome(opts.home, io.env))
    const client = await ControlClient.connect(paths.socket)
    if (client === undefined) throw new KitsyncError('PEER_NOT_RUNNING', `no peer is running for ${paths.home}: start it with kitsync peer start`)
    const pid = client.peer?.pid
    client.close()
    const files = httpFiles(paths.home)
    const info = await readHttpInfo(files)
    if (info === undefined || info.pid !== pid) {
      throw new KitsyncError(
        'NOT_FOUND',
        `the running peer (pid ${pid ?? '?'}) serves no HTTP API: it was started with --no-http, or workspace.json has "http": {"enabled": false}`,
      )
    }
    const token = await readHttpToken(files)
    if (token === undefined) throw new KitsyncError('NOT_FOUND', `no token in ${files.token}: restart the peer to make one`)
    const login = loginUrl(info.url, token, info.pid)
    if (opts.json === true) return print(io, opts, { url: info.url, token, login }, () => '')
    if (options.print !== true && (await openBrowser(login, io.env))) {
      io.out(`opened ${info.url} in the browser\n`)
      return
    }
    io.out(`${login}\n`)
    if (options.print !== true)
      io.err(`no browser to open here: open this URL in a browser on this machine (it works once, within ${LOGIN_CODE_TTL_MS / 60_000} minutes)\n`)
  })
}
