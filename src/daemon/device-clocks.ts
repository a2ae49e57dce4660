import { debugLog } from '../core/debug-log.js'
import type { DeviceClock } from '../core/workspace-types.js'
import { CLOCK_PROTOCOL_ID, clockProbeHandler, probeClock, type ClockReading } from '../net/clock-probe.js'
import type { Mesh } from '../net/mesh.js'

const log = debugLog('daemon:clocks')

/** Connected devices' clocks are measured again this often (a clock drifts, NTP steps it). */
export const CLOCK_REMEASURE_MS = 10 * 60_000
/** After a probe failed, a device is probed again this much later (once), however often its session opens. */
export const CLOCK_RETRY_MS = 5_000

/**
 * The clocks of the connected devices against this one (net/clock-probe.ts): measured when a
 * device's sync session opens and every CLOCK_REMEASURE_MS, shown in the network status for
 * `kitsync doctor`. This peer answers the probes of members.
 */
export class DeviceClocks {
  private readonly readings = new Map<string, ClockReading>()
  /** Devices being probed, and when a probe of each last failed (see measure). */
  private readonly probing = new Set<string>()
  private readonly failures = new Map<string, number>()
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
    // One probe at a time per device, and none for CLOCK_RETRY_MS after one failed: a device
    // whose session keeps reopening without answering (an old version, a hostile member) is
    // not probed at each opening.
    const failed = this.failures.get(peerId)
    if (mesh === undefined || this.probing.has(peerId) || (failed !== undefined && Date.now() - failed < CLOCK_RETRY_MS)) return
    this.probing.add(peerId)
    try {
      this.readings.set(peerId, await probeClock(mesh.node, peerId))
      this.failures.delete(peerId)
    } catch (err) {
      this.failures.set(peerId, Date.now())
      if (this.failures.size > 1000) this.failures.delete(this.failures.keys().next().value as string)
      // Probed too early (its handler not up yet) or a passing fault: one more try if it stays connected.
      setTimeout(() => {
        if (this.mesh?.connectedPeers().includes(peerId) === true && !this.readings.has(peerId)) void this.measure(peerId)
      }, CLOCK_RETRY_MS + 10).unref()
      // A device of an earlier version does not answer: its clock is not shown, doctor says so.
      log(`cannot measure the clock of ${peerId}`, err)
    } finally {
      this.probing.delete(peerId)
    }
  }

  /** The last reading of each connected device. */
  connected(): DeviceClock[] {
    const connected = new Set(this.mesh?.connectedPeers() ?? [])
    return [...this.readings].filter(([id]) => connected.has(id)).map(([device, r]) => ({ device, ...r }))
  }
}
