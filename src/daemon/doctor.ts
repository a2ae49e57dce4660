/**
 * `kitsync doctor`: the checks, as pure logic over injected probes (the CLI gives real ones,
 * unit tests fakes). Each check answers `ok` and a one-line message; a failed check says what
 * to do. A check that cannot run here (no peer to ask, nothing configured) passes with
 * `skipped: true` and a message saying why: it found nothing wrong, and the exit status
 * reflects only what was checked and failed.
 */

export interface DoctorCheck {
  name: string
  ok: boolean
  message: string
  /** The check could not run (ok stays true); the message says why. */
  skipped?: boolean
}

/** What the running peer of this home says, when one runs. */
export interface RunningPeerView {
  pid?: number
  listen: string[]
  /** Devices connected now. */
  connected: number
  /** Whether the peer looks for devices by mDNS ('off': --no-mdns). */
  mdns?: 'on' | 'off' | 'unavailable'
  /** Relays (members serving circuit relay) the peer is connected to, shown by name, and whether it holds a reservation on each. */
  relays?: { device: string; reserved: boolean }[]
  /** Clock offsets (ms, theirs minus ours) of connected devices, when the peer measures them, with the round trip they were measured over. */
  clockOffsets?: { device: string; offsetMs: number; rttMs?: number }[]
}

export interface FileInfo {
  path: string
  mode: number
  uid: number
  isDirectory: boolean
}

export interface DoctorProbes {
  home: string
  /** Why mDNS cannot send here, or undefined when it can (net/multicast-route.ts). */
  multicastUnavailable(): Promise<string | undefined>
  /** The running peer of this home, or undefined when none runs. */
  runningPeer(): Promise<RunningPeerView | undefined>
  /** Listen addresses to check when no peer runs (configured, else the default). */
  listen: string[]
  /** Bind host:port for a moment: undefined when free, else the reason (e.g. EADDRINUSE). */
  bindFree(host: string, port: number): Promise<string | undefined>
  /** workspace.json as read: its name, none yet, or why it could not be read (code: message). */
  workspace: { name: string } | { missing: true } | { error: string }
  /** Remembered bootstrap addresses (workspace.json). */
  bootstrap: string[]
  /** TCP connect with a short timeout: undefined when it connected, else the reason. */
  tcpConnect(host: string, port: number): Promise<string | undefined>
  /** The home folder and the files directly in it; undefined when the home does not exist. */
  homeFiles(): Promise<{ home: FileInfo; files: FileInfo[] } | undefined>
  /** This user's uid (undefined on Windows: the checks of owners and modes do not apply). */
  uid: number | undefined
  /** Whether store/ exists. */
  storeExists(): Promise<boolean>
  /** Open the store and close it again; throws (a KitsyncError) when it does not open. */
  openStore(): Promise<void>
  /** Bytes in store/ and snapshots/. */
  sizes(): Promise<{ store: number; snapshots: number }>
  /** Names of `store.wal.damaged-*` files in the home. */
  damagedWalFiles(): Promise<string[]>
  nodeVersion: string
  /** package.json `engines.node`. */
  engines: string
}

/**
 * Skew past which a device's clock is reported: concurrent writes to one field are ordered by
 * hybrid logical clocks that start from the wall clock, so a device 2 s ahead wins every
 * conflict with writes made up to 2 s after its own. NTP keeps clocks within milliseconds.
 */
export const MAX_CLOCK_SKEW_MS = 2_000

export async function runDoctor(p: DoctorProbes): Promise<DoctorCheck[]> {
  const peer = await p.runningPeer().catch(() => undefined) // no answer: treated as not running
  return [
    await multicastCheck(p, peer),
    await portsCheck(p, peer),
    ...(await bootstrapChecks(p, peer)),
    relayCheck(peer),
    clockCheck(peer),
    workspaceCheck(p),
    await storeCheck(p, peer),
    await permissionsCheck(p),
    nodeCheck(p.nodeVersion, p.engines),
  ]
}

const pass = (name: string, message: string): DoctorCheck => ({ name, ok: true, message })
const fail = (name: string, message: string): DoctorCheck => ({ name, ok: false, message })
const skip = (name: string, message: string): DoctorCheck => ({ name, ok: true, skipped: true, message })

export async function multicastCheck(p: DoctorProbes, peer?: RunningPeerView): Promise<DoctorCheck> {
  const reason = await p.multicastUnavailable()
  if (reason === undefined && peer?.mdns === 'off') {
    return pass('multicast', 'mDNS can send here, but the running peer has it off (--no-mdns): it finds devices by --bootstrap addresses only')
  }
  if (reason === undefined) return pass('multicast', 'mDNS can send: devices on the LAN are found without --bootstrap')
  return fail(
    'multicast',
    `mDNS cannot work here: ${reason}. Connect this host to a network with a multicast route (e.g. 'ip route add 224.0.0.0/4 dev IFACE'), or reach peers with 'kitsync peer start --bootstrap ADDRESS'`,
  )
}

/** Host and TCP port of a multiaddr's first hop (`/ip4|ip6|dns*\/HOST/tcp/PORT/...`). */
export function tcpTarget(addr: string): { host: string; port: number } | undefined {
  const m = /^\/(ip4|ip6|dns|dns4|dns6)\/([^/]+)\/tcp\/(\d+)(\/|$)/.exec(addr)
  if (m === null) return undefined
  const port = Number(m[3])
  return port > 65535 ? undefined : { host: m[2] as string, port }
}

export async function portsCheck(p: DoctorProbes, peer: RunningPeerView | undefined): Promise<DoctorCheck> {
  if (peer !== undefined) {
    const direct = peer.listen.filter((a) => !a.includes('/p2p-circuit'))
    // Reachable from the LAN needs an address other than loopback (checked from here: the LAN's firewall is not).
    const loopbackOnly = direct.length > 0 && direct.every((a) => /^\/(ip4\/127\.|ip6\/::1\/)/.test(a))
    const note = loopbackOnly ? '; loopback only: other machines cannot reach it (for the LAN: kitsync peer start --listen /ip4/0.0.0.0/tcp/4771)' : ''
    return pass('ports', `the peer (pid ${peer.pid ?? '?'}) listens on ${peer.listen.length === 0 ? 'no address' : peer.listen.join(', ')}${note}`)
  }
  const busy: string[] = []
  const notes: string[] = []
  for (const addr of p.listen) {
    const target = tcpTarget(addr)
    if (target === undefined) notes.push(`${addr}: not a TCP address, not checked`)
    else if (target.port === 0) notes.push(`${addr}: a free port is chosen at start`)
    else {
      const reason = await p.bindFree(target.host, target.port)
      if (reason === undefined) notes.push(`${addr}: free`)
      else busy.push(`${addr} (${reason})`)
    }
  }
  if (busy.length > 0) {
    return fail(
      'ports',
      `another process holds ${busy.join(', ')} and no peer of this home runs: stop that process, or start the peer on another port (kitsync peer start --listen /ip4/0.0.0.0/tcp/PORT)`,
    )
  }
  return pass('ports', `no peer runs; ${notes.join('; ')}`)
}

export async function bootstrapChecks(p: DoctorProbes, peer?: RunningPeerView): Promise<DoctorCheck[]> {
  if (p.bootstrap.length === 0) {
    const how =
      peer?.mdns === 'off'
        ? ': with mDNS off too, this peer reaches only devices that dial it (give it one with kitsync peer start --bootstrap ADDRESS)'
        : ' (peers are found by mDNS)'
    return [skip('bootstrap', `no bootstrap address remembered in workspace.json${how}`)]
  }
  return Promise.all(
    p.bootstrap.map(async (addr) => {
      const name = `bootstrap ${addr}`
      const target = tcpTarget(addr)
      if (target === undefined) return skip(name, 'not a TCP address; not checked')
      const reason = await p.tcpConnect(target.host, target.port)
      if (reason === undefined) return pass(name, `reachable (TCP connect to ${target.host}:${target.port})`)
      return fail(
        name,
        `cannot reach ${target.host}:${target.port} (${reason}): check that the peer there runs and that no firewall blocks the port, or fix the address in workspace.json`,
      )
    }),
  )
}

/** Each relay the peer is connected to: is a reservation held there (devices of other networks reach this one through it)? */
export function relayCheck(peer: RunningPeerView | undefined): DoctorCheck {
  if (peer === undefined) return skip('relay', 'no peer of this home runs: relay reservations are held by the running peer only')
  if (peer.relays === undefined || peer.relays.length === 0) {
    return skip('relay', 'no relay among the connected devices (a VPS peer started with --relay, reached by a --bootstrap address, is one)')
  }
  const missing = peer.relays.filter((r) => !r.reserved)
  if (missing.length > 0) {
    return fail(
      'relay',
      `connected to relay ${missing.map((r) => r.device).join(', ')} but no reservation held there: devices on other networks cannot reach this one through it. A reservation takes a few seconds after the relay connects (run doctor again); if it stays missing, check that the relay runs with --relay and lists this device (kitsync devices on it), and see kitsync peer logs`,
    )
  }
  return pass('relay', `reservation held on ${peer.relays.map((r) => r.device).join(', ')}: devices on other networks reach this one through it`)
}

export function clockCheck(peer: RunningPeerView | undefined): DoctorCheck {
  if (peer === undefined) return skip('clock', 'no peer of this home runs: clock skew is measured against connected devices only')
  if (peer.clockOffsets === undefined) {
    return skip('clock', `the peer does not measure the clocks of devices (${peer.connected} connected); not checked`)
  }
  if (peer.clockOffsets.length === 0) {
    return skip('clock', peer.connected === 0 ? 'no device connected: nothing to compare with' : `${peer.connected} device(s) connected, no clock measured yet`)
  }
  // Off only when off even at the edge of what the round trip allows.
  const off = peer.clockOffsets.filter((o) => Math.abs(o.offsetMs) - (o.rttMs ?? 0) / 2 > MAX_CLOCK_SKEW_MS)
  if (off.length > 0) {
    return fail(
      'clock',
      `clock skew over ${MAX_CLOCK_SKEW_MS / 1000} s with ${off.map((o) => `${o.device} (${seconds(o.offsetMs)}) ${o.offsetMs > 0 ? 'ahead of' : 'behind'} this device`).join(', ')}: the device whose clock is wrong wins or loses conflicts it should not; turn on time synchronisation (NTP, e.g. timedatectl set-ntp true) on the devices`,
    )
  }
  const worst = Math.max(...peer.clockOffsets.map((o) => Math.abs(o.offsetMs)))
  return pass(
    'clock',
    `clocks agree within ${MAX_CLOCK_SKEW_MS / 1000} s with ${peer.clockOffsets.length} connected device(s) (largest offset ${Math.round(worst)} ms)`,
  )
}

/** `-120 s`, `2.5 s`: seconds, with a tenth below ten. */
function seconds(ms: number): string {
  const s = ms / 1000
  return `${Math.abs(s) < 10 ? s.toFixed(1) : Math.round(s)} s`
}

export function workspaceCheck(p: DoctorProbes): DoctorCheck {
  const w = p.workspace
  if ('missing' in w) return skip('workspace', 'no workspace.json yet (run: kitsync init, or kitsync join TOKEN)')
  if ('error' in w) return fail('workspace', `${w.error}; fix or restore workspace.json from a backup (kitsync reads it at every start)`)
  return pass('workspace', `workspace.json reads (workspace ${w.name})`)
}

function mib(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

export async function storeCheck(p: DoctorProbes, peer: RunningPeerView | undefined): Promise<DoctorCheck> {
  // Not opened when missing: opening would make a new, empty store.
  if (!(await p.storeExists())) return skip('store', 'no store yet (made at first use)')
  let opened = 'opens'
  if (peer !== undefined) opened = `open in the running peer (pid ${peer.pid ?? '?'})`
  else {
    try {
      await p.openStore()
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERROR'
      return fail('store', `${code}: ${(err as Error).message}`)
    }
  }
  const sizes = await p.sizes()
  const damaged = await p.damagedWalFiles()
  const what = `${opened}; store/ ${mib(sizes.store)}, snapshots/ ${mib(sizes.snapshots)}`
  if (damaged.length > 0) {
    return fail(
      'store',
      `${what}; damaged write-ahead files set aside: ${damaged.join(', ')} (kitsync kept the whole records; check the data, then delete them, or keep them for a bug report)`,
    )
  }
  return pass('store', what)
}

/** Files of the home that hold secrets or settings: these must be 0600. */
export async function permissionsCheck(p: DoctorProbes): Promise<DoctorCheck> {
  if (p.uid === undefined) return skip('permissions', 'not a POSIX system: the folder ACL decides; not checked')
  const found = await p.homeFiles()
  if (found === undefined) return skip('permissions', `no home folder ${p.home} yet`)
  const problems: string[] = []
  const fixes: string[] = []
  const { home, files } = found
  if (home.uid !== p.uid) {
    return fail('permissions', `home folder ${home.path} belongs to uid ${home.uid}, not to this user (uid ${p.uid}): use a folder of your own (--home)`)
  }
  if ((home.mode & 0o077) !== 0) {
    problems.push(`home folder is mode ${(home.mode & 0o777).toString(8)}`)
    fixes.push(`chmod 700 '${home.path}'`)
  }
  for (const f of files) {
    if (f.isDirectory) continue // store/, snapshots/: inside the private home folder
    if (f.uid !== p.uid) problems.push(`${f.path} belongs to uid ${f.uid}`)
    else if ((f.mode & 0o077) !== 0) {
      problems.push(`${f.path} is mode ${(f.mode & 0o777).toString(8)}`)
      fixes.push(`chmod 600 '${f.path}'`)
    }
  }
  if (problems.length > 0) {
    const fix = fixes.length > 0 ? `run: ${fixes.join('; ')}` : 'give the files back to this user (chown)'
    return fail('permissions', `${problems.join('; ')}: others may read this device's keys and data; ${fix}`)
  }
  return pass('permissions', `home folder is private (0700) and its ${files.filter((f) => !f.isDirectory).length} file(s) are 0600, owned by uid ${p.uid}`)
}

/** Whether a version satisfies a range of `^X.Y.Z`, `>=X.Y.Z` and `X.Y.Z` terms joined by `||`. */
export function satisfiesRange(version: string, range: string): boolean {
  const parse = (v: string): number[] => v.replace(/^v/, '').split('.').slice(0, 3).map(Number)
  const cmp = (a: number[], b: number[]): number => {
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0)
    return 0
  }
  const v = parse(version)
  return range.split('||').some((term) => {
    const t = term.trim()
    if (t.startsWith('^')) {
      const min = parse(t.slice(1))
      return v[0] === min[0] && cmp(v, min) >= 0
    }
    if (t.startsWith('>=')) return cmp(v, parse(t.slice(2))) >= 0
    return cmp(v, parse(t)) === 0
  })
}

export function nodeCheck(version: string, engines: string): DoctorCheck {
  if (satisfiesRange(version, engines)) return pass('node', `Node ${version} satisfies ${engines}`)
  return fail('node', `Node ${version} does not satisfy ${engines}: install a supported Node release (20.15 or later 20.x, or 22.2+)`)
}
