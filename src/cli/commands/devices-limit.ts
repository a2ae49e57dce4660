import type { Command } from 'commander'
import { countedDevices, deviceLimitOf, MAX_DEVICE_LIMIT } from '../../core/device-limit.js'
import { KitsyncError } from '../../core/errors.js'
import { homePaths, readWorkspaceConfig, resolveHome, writeWorkspaceConfig } from '../../store/home.js'
import { example, globals, print, withWorkspace, type CliIO } from '../context.js'
import { shortId } from '../device-label.js'

/**
 * `kitsync devices limit [N]`: show or set the device limit (`maxDevices` in workspace.json),
 * checked by this device when a device joins with a token it issued; a running peer reads it
 * at each join. Lowering it below the devices there are revokes no one: it refuses new joins.
 */
export function registerLimit(devices: Command, io: CliIO): void {
  example(
    devices
      .command('limit')
      .description('show or set how many devices (not revoked) a pairing issued here may bring the workspace to, and list who counts')
      .argument('[n]', `the new limit, 1 to ${MAX_DEVICE_LIMIT}`),
    'kitsync devices limit',
    'kitsync devices limit 8 --json',
  ).action(async (n: string | undefined, _o: unknown, cmd: Command) => {
    const opts = globals(cmd)
    const paths = homePaths(resolveHome(opts.home, io.env))
    const limit = n === undefined ? undefined : Number(n)
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > MAX_DEVICE_LIMIT))
      throw new KitsyncError('INVALID_ARGUMENT', `the device limit must be a whole number from 1 to ${MAX_DEVICE_LIMIT}, not '${n ?? ''}'`)
    const devices = await withWorkspace(io, opts, (ws) => ws.devices())
    const config = await readWorkspaceConfig(paths)
    if (config === undefined) throw new KitsyncError('NOT_FOUND', 'no workspace in this home yet (run: kitsync init)')
    const previous = deviceLimitOf(config)
    if (limit !== undefined) await writeWorkspaceConfig(paths, { ...config, maxDevices: limit })
    const counted = countedDevices(devices).map((d) => ({ deviceId: d.peerId, name: d.name, role: d.role, self: d.self }))
    const result = { maxDevices: limit ?? previous, previous, counted }
    print(io, opts, result, () => {
      const head =
        limit === undefined ? `device limit ${previous}` : limit === previous ? `device limit stays ${limit}` : `device limit ${previous} -> ${limit}`
      const full = counted.length >= result.maxDevices ? ' (full: a new device is refused)' : ''
      return [
        `${head}; ${counted.length} device(s) count${full}:`,
        ...counted.map((d) => `  ${shortId(d.deviceId)}  ${d.name}${d.self ? ' (this device)' : ''}${d.role === 'untrusted' ? ' (storage/relay peer)' : ''}`),
        '',
      ].join('\n')
    })
  })
}
