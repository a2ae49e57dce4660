import type { Command } from 'commander'
import { ControlClient } from '../../api/control-client.js'
import { decodeToken, TOKEN_FLAG_CONFIRM } from '../../protocol/pair-token.js'
import type { JoinResult } from '../../daemon/peer.js'
import { homePaths, resolveHome } from '../../store/home.js'
import { hostname } from 'node:os'
import { example, globals, networkOptions, peerOptionsFrom, print, type CliIO, type NetworkFlags } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    networkOptions(
      program
        .command('join')
        .description('join a workspace with a token from `kitsync pair` on one of its devices, and copy its data')
        .argument('<token>', 'the token shown by kitsync pair')
        .option('--name <device>', 'name of this device as the others will see it', hostname()),
    ),
    'kitsync join ks1AbC... --name laptop',
  ).action(async (token: string, options: NetworkFlags & { name: string }, cmd: Command) => {
    const opts = globals(cmd)
    const decoded = decodeToken(token) // refuse a damaged token before touching anything
    // With a --confirm token the inviter's person compares this code with the one on their screen.
    const showCode = (decoded.flags & TOKEN_FLAG_CONFIRM) !== 0
    const home = resolveHome(opts.home, io.env)
    const client = await ControlClient.connect(homePaths(home).socket)
    let result: JoinResult
    if (client !== undefined) {
      try {
        result = (await client.request('join', { token, name: options.name })) as JoinResult
        // (through a running peer the confirmation code is in its output: kitsync peer start)
      } finally {
        client.close()
      }
    } else {
      // No peer runs here: run one just for the join (any free port), copy the workspace, stop.
      const peer = await (await import('../../daemon/peer.js')).Peer.start({ home, control: false, ...peerOptionsFrom({ listen: ['/ip4/0.0.0.0/tcp/0'], ...options }) })
      try {
        result = await peer.join(token, options.name, {
          ...(showCode ? { onCode: (code: string) => io.err(`confirmation code: ${code} (the inviting device shows the same code; approve it there)\n`) } : {}),
        })
      } finally {
        await peer.stop()
      }
    }
    print(io, opts, result, () =>
      `joined workspace ${result.name} (${result.workspaceId})\n${result.caughtUp ? 'copied the workspace from the inviting device' : 'the copy did not finish; it continues when the peer runs (kitsync peer start)'}\n`,
    )
  })
}
