import type { Command } from 'commander'
import { homeExists, homePaths, readWorkspaceConfig, resolveHome } from '../../store/home.js'
import { ControlClient } from '../../api/control-client.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { formatCollections } from './list.js'
import { formatSyncStatus } from './status-sync.js'
import { shortId } from '../device-label.js'

export function register(program: Command, io: CliIO): void {
  example(
    program.command('status').description('show the home folder, device, workspace, whether the peer runs, and the collections'),
    'kitsync status',
    'kitsync status --json',
  ).action(async (_options: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const home = resolveHome(opts.home, io.env)
    const paths = homePaths(home)
    // Status never creates a workspace: it reports that there is none.
    if (!(await homeExists(home)) || (await readWorkspaceConfig(paths)) === undefined) {
      const probe = await ControlClient.connect(paths.socket).catch(() => undefined) // no answer: not running, which is what status reports
      probe?.close()
      if (probe === undefined) {
        print(io, opts, { initialised: false, home }, () => `home      ${home}\nworkspace none yet (run: kitsync init)\npeer      not running\n`)
        return
      }
    }
    const [status, log] = await withWorkspace(io, opts, async (ws) => [await ws.status(), await ws.log()] as const, { home })
    const deviceEvents = log.filter((e) => e.type === 'device-joined' || e.type === 'device-revoked').slice(-3)
    const { info, peer } = status
    print(io, opts, { initialised: true, ...status, deviceEvents }, () =>
      [
        `home      ${info.home}`,
        `device    ${info.deviceId}`,
        `workspace ${info.name} (${info.workspaceId})`,
        `peer      ${peer.running ? `running (pid ${peer.pid ?? '?'}, since ${new Date(peer.startedAt ?? 0).toISOString()})` : 'not running'}`,
        `socket    ${peer.socket}`,
        `version   ${info.version}`,
        ...(status.revoked === undefined
          ? []
          : [
              `membership revoked by ${status.revoked.revokedBy} at ${new Date(status.revoked.revokedAt).toISOString()}${status.revoked.reason === undefined ? '' : ` (${status.revoked.reason})`}: the other devices refuse this device`,
            ]),
        ...(status.paused === undefined
          ? []
          : [
              `sync      paused since ${new Date(status.paused.since).toISOString()}${status.paused.until === undefined ? ' until kitsync sync resume' : `, resumes at ${new Date(status.paused.until).toISOString()}`}`,
            ]),
        ...(status.network === undefined
          ? []
          : [
              ...status.network.listen.map((a, i) => `${i === 0 ? 'listening' : '         '} ${a}`),
              `mDNS      ${status.network.discovery.mdns}${status.network.discovery.reason === undefined ? '' : ` (${status.network.discovery.reason})`}`,
              `keys      epoch ${status.network.keyEpoch}`,
              `peers     ${status.network.connected} connected, ${status.network.devices.filter((d) => d.peerId !== info.deviceId).length} other device(s) in the workspace, ${status.network.refusedConnections} refused connection(s)`,
              ...status.network.devices
                .filter((d) => d.state === 'connected')
                .map((d) => `          ${d.name} (${shortId(d.peerId)}): ${d.unsentBytes ?? 0} bytes unsent`),
            ]),
        ...(status.sync === undefined ? [] : formatSyncStatus(status.sync)),
        ...deviceEvents.map((e) => `device    ${new Date(e.at).toISOString()} ${e.reason}`),
        '',
        formatCollections(status.collections),
      ].join('\n'),
    )
  })
}
