import { createSocket } from 'node:dgram'
import { networkInterfaces } from 'node:os'

/**
 * mDNS (multicast-dns) fails silently (ENETUNREACH, no log) when multicast cannot leave this host.
 * Probe the way its multicast-dns library will send, without sending anything: a UDP socket
 * on the same multicast interface, `connect`ed to 224.0.0.251:5353 (connect only looks up
 * the route). Returns why mDNS cannot work, or undefined when it can.
 */
export async function multicastUnavailable(): Promise<string | undefined> {
  const external = Object.values(networkInterfaces())
    .flat()
    .some((a) => a !== undefined && a.family === 'IPv4' && !a.internal)
  const socket = createSocket({ type: 'udp4', reuseAddr: true })
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(0, () => resolve())
    })
    // multicast-dns sends through the loopback interface when there is no other.
    socket.setMulticastInterface(external ? '0.0.0.0' : '127.0.0.1')
    await new Promise<void>((resolve, reject) =>
      socket.connect(5353, '224.0.0.251', (err?: Error) => (err === undefined || err === null ? resolve() : reject(err))),
    )
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENETUNREACH' ? 'no route for multicast on this host, so mDNS packets cannot be sent' : `mDNS cannot send: ${(err as Error).message}`
  } finally {
    socket.close()
  }
}
