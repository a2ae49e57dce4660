import type { Command } from 'commander'
import { ControlClient } from '../../api/control-client.js'
import { KitsyncError } from '../../core/errors.js'
import { homePaths, resolveHome } from '../../store/home.js'
import { httpFiles, readHttpInfo, readHttpToken } from '../../store/http-files.js'
import { example, globals, print, type CliIO } from '../context.js'

/**
 * `kitsync dashboard`: where the running peer serves HTTP (its URL; with --json the token too,
 * for apps and scripts). The token is read from HOME/http.token and printed only with --json.
 */
export function register(program: Command, io: CliIO): void {
  example(
    program
      .command('dashboard')
      .description(
        'print the URL of the running peer\'s HTTP API (docs/HTTP-API.md); --json prints {"url", "token"}, the token every request needs as Authorization: Bearer TOKEN',
      ),
    'kitsync dashboard',
    'kitsync dashboard --json     # {"url": "http://127.0.0.1:4772/", "token": "..."}',
  ).action(async (_options: object, cmd: Command) => {
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
    print(io, opts, { url: info.url, token }, () => `${info.url}\n`)
  })
}
