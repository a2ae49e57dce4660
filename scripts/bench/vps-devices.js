// Many kitsync devices in one process, for the "vps" section's memory figure: each is a whole
// Peer (its own identity, home folder, LevelDB store, libp2p node and TCP connection to the
// VPS), joins the workspace with its own token, keeps the VPS as bootstrap (relay + blind
// store), and writes. One process instead of 20 keeps the 2-core machine usable.
// Parent -> child over IPC: { id, cmd, args }; child -> parent: { id, result } or { id, error }.
import '../../dist/polyfill.js'

const { Peer } = await import('../../dist/daemon/peer.js')
const peers = []

const commands = {
  async start({ homes, tokens, bootstrap, snapshotPolicy }) {
    const started = await Promise.all(
      homes.map((home) =>
        Peer.start({
          home,
          listen: ['/ip4/127.0.0.1/tcp/0'],
          bootstrap,
          mdns: false,
          control: false,
          ...(snapshotPolicy === undefined ? {} : { snapshotPolicy }),
        }),
      ),
    )
    peers.push(...started)
    // All at once: the inviter pairs them concurrently (each with its own token).
    const joined = await Promise.all(started.map((peer, i) => peer.join(tokens[i], `dev${i}`, { waitMs: 30_000 })))
    return { peers: peers.length, caughtUp: joined.filter((j) => j.caughtUp).length }
  },
  /** `count` writes on every device. */
  async write({ collection, count }) {
    await Promise.all(
      peers.map(async (p, i) => {
        for (let k = 0; k < count; k++) await p.workspace.set(collection, `d${i}-${k}`, { i, k, s: 'x'.repeat(64) })
      }),
    )
    return {}
  },
  /** Devices whose blind store session is live. */
  async live() {
    let live = 0
    for (const p of peers) if ((await p.blind.status()).stores?.some((s) => s.live)) live++
    return { live }
  },
  /** Each device's sessions with the store (for diagnostics when one does not come live). */
  async status() {
    return Promise.all(
      peers.map(async (p) => ({
        id: p.deviceId.slice(-6),
        blind: await p.blind.status(),
        connected: p.mesh.connectedPeers().map((x) => x.slice(-6)),
        relayed: p.mesh.node.getConnections().filter((c) => c.remoteAddr.toString().includes('p2p-circuit')).length,
      })),
    )
  },
  async stop() {
    for (const p of peers.splice(0)) await p.stop().catch(() => undefined)
    return {}
  },
}

process.on('message', async ({ id, cmd, args }) => {
  try {
    process.send({ id, result: await commands[cmd](args ?? {}) })
  } catch (err) {
    process.send({ id, error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) })
  }
})
// The parent disconnects after `stop`: nothing is left to keep this process alive.
process.on('disconnect', () => {
  for (const p of peers.splice(0)) void p.stop().catch(() => undefined)
})
process.send({ event: 'ready' })
