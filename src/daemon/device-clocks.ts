import { debugLog } from '../core/debug-log.js'
import type { DeviceClock } from '../core/workspace-types.js'
import { CLOCK_PROTOCOL_ID, clockProbeHandler, probeClock, type ClockReading } from '../net/clock-probe.js'
import type { Mesh } from '../net/mesh.js'

const log = debugLog('daemon:clocks')

/** Connected devices' clocks are measured again this often (a clock drifts, NTP steps it). */
export const CLOCK_REMEASURE_MS = 10 * 60_000

/**
 * The clocks of the connected devices against this one (net/clock-probe.ts): measured when a
 * device's sync session opens and every CLOCK_REMEASURE_MS, shown in the network status for
 * `kitsync doctor`. This peer answers the probes of members.
 */
export class DeviceClocks {
  private readonly readings = new Map<string, ClockReading>()
  private mesh: Mesh | undefined
  private timer: NodeJS.Timeout | undefined
  private off: (() => void) | undefined

  constructor(private readonly isMember: (deviceId: string) => Promise<boolean>) {}

  /** The protocol handler to give the mesh. */
  get handlers(): Record<string, ReturnType<typeof clockProbeHandler>> {
    return { [CLOCK_PROTOCOL_ID]: clockProbeHandler(this.isMember) }
  }

  /** Start measuring on the mesh. */
  attach(mesh: Mesh): void {
    this.mesh = mesh
    const offs = [
      mesh.on('connected', ({ peerId }) => void this.measure(peerId)),
      // Measured again at its next connection (its clock may have been set meanwhile).
      mesh.on('offline', ({ peerId }) => void this.readings.delete(peerId)),
    ]
    this.off = () => {
      for (const off of offs) off()
    }
    this.timer = setInterval(() => {
      for (const id of mesh.connectedPeers()) void this.measure(id)
    }, CLOCK_REMEASURE_MS)
    this.timer.unref()
  }

  stop(): void {
    this.off?.()
    clearInterval(this.timer)
    this.mesh = undefined
  }

  private async measure(peerId: string): Promise<void> {
    const mesh = this.mesh
    if (mesh === undefined) return
    try {
      this.readings.set(peerId, await probeClock(mesh.node, peerId))
    } catch (err) {
      // A device of an earlier version does not answer: its clock is not shown, doctor says so.
      log(`cannot measure the clock of ${peerId}`, err)
    }
  }

  /** The last reading of each connected device. */
  connected(): DeviceClock[] {
    const connected = new Set(this.mesh?.connectedPeers() ?? [])
    return [...this.readings].filter(([id]) => connected.has(id)).map(([device, r]) => ({ device, ...r }))
  }
}
