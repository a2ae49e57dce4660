import { DEFAULT_MAX_DEVICES } from './membership.js'
import type { DeviceRecord } from './workspace-types.js'

/**
 * The device limit (`maxDevices` in workspace.json, `kitsync devices limit N`): the most
 * devices a pairing issued here may bring the workspace to. Every device that is not revoked
 * counts: this one, the others, and storage/relay peers (a VPS).
 */

export const MAX_DEVICE_LIMIT = 1000

/** The devices that count toward the limit (the joining one left out when it is already listed). */
export function countedDevices<D extends Pick<DeviceRecord, 'peerId' | 'state'>>(devices: readonly D[], joining?: string): D[] {
  return devices.filter((d) => d.state === 'trusted' && d.peerId !== joining)
}

export function deviceLimitOf(config: { maxDevices?: number } | undefined): number {
  return config?.maxDevices ?? DEFAULT_MAX_DEVICES
}

/** The warning of `kitsync pair` when a join would be refused for the limit, else undefined. */
export function fullWarning(counted: number, limit: number): string | undefined {
  if (counted < limit) return undefined
  return `the workspace is full (${counted} of ${limit} devices): a device joining with this token is refused with DEVICE_LIMIT_EXCEEDED; revoke one (kitsync revoke) or raise the limit (kitsync devices limit ${counted + 1})`
}
