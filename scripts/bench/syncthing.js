// Syncthing as the folder benchmark's anchor: instances of Debian's `syncthing` package on
// loopback, driven through their REST API. Every instance is generated with its own home and
// configured before it first starts so that it sends nothing beyond 127.0.0.1: no global or
// local discovery, no relays, no NAT traversal, no usage or crash reports, no upgrades.
import { spawn, spawnSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { processMemory, withTimeout } from './lib.js'

/** The syncthing binary, installed from Debian's package when missing (root only); else the reason it is not there. */
export function findSyncthing({ install = true } = {}) {
  const which = () => spawnSync('sh', ['-c', 'command -v syncthing'], { encoding: 'utf8' }).stdout.trim()
  let bin = which()
  if (bin === '' && install && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    let r = spawnSync('apt-get', ['install', '-y', '-q', 'syncthing'], { encoding: 'utf8', env, timeout: 600_000 })
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-q'], { encoding: 'utf8', env, timeout: 300_000 })
      r = spawnSync('apt-get', ['install', '-y', '-q', 'syncthing'], { encoding: 'utf8', env, timeout: 600_000 })
    }
    bin = which()
  }
  if (bin === '') return { reason: 'syncthing is not installed and `apt-get install syncthing` was not possible here' }
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim()
  return { bin, version }
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Replace the text of `<tag>...</tag>` (the first one) in config.xml. */
function setTag(xml, tag, value) {
  const re = new RegExp(`<${tag}>[^<]*</${tag}>`)
  if (!re.test(xml)) throw new Error(`no <${tag}> in syncthing's config.xml`)
  return xml.replace(re, `<${tag}>${value}</${tag}>`)
}

const LOOPBACK_OPTIONS = {
  globalAnnounceEnabled: 'false',
  localAnnounceEnabled: 'false',
  relaysEnabled: 'false',
  natEnabled: 'false',
  urAccepted: '-1',
  autoUpgradeIntervalH: '0',
  crashReportingEnabled: 'false',
  startBrowser: 'false',
  // Default true: it would run at a lower CPU priority than kitsync's peers.
  setLowPriority: 'false',
}

export class SyncthingNode {
  static async create(bin, home, name) {
    const gen = spawnSync(bin, ['generate', `--home=${home}`, '--no-default-folder'], { encoding: 'utf8' })
    const id = /Device ID:\s*(\S+)/.exec(gen.stdout + gen.stderr)?.[1]
    if (gen.status !== 0 || id === undefined) throw new Error(`syncthing generate failed: ${(gen.stderr || gen.stdout).trim().slice(0, 300)}`)
    const guiPort = await freePort()
    const listenPort = await freePort()
    const file = join(home, 'config.xml')
    let xml = await readFile(file, 'utf8')
    const apiKey = /<apikey>([^<]+)<\/apikey>/.exec(xml)?.[1]
    xml = xml.replace(/<address>[^<]*<\/address>/, `<address>127.0.0.1:${guiPort}</address>`)
    xml = setTag(xml, 'listenAddress', `tcp://127.0.0.1:${listenPort}`)
    for (const [tag, value] of Object.entries(LOOPBACK_OPTIONS)) xml = setTag(xml, tag, value)
    await writeFile(file, xml)
    const node = new SyncthingNode(bin, home, name, id, apiKey, guiPort, listenPort)
    await node.start()
    return node
  }

  constructor(bin, home, name, id, apiKey, guiPort, listenPort) {
    Object.assign(this, { bin, home, name, id, apiKey, guiPort, listenPort })
    this.child = undefined
  }

  /** Start `syncthing serve` and wait until its REST API answers. */
  async start() {
    const env = { ...process.env, STNOUPGRADE: '1', STNORESTART: '1', STGUIADDRESS: `127.0.0.1:${this.guiPort}` }
    this.startedAt = performance.now()
    this.child = spawn(this.bin, ['serve', `--home=${this.home}`, '--no-browser', '--no-restart', '--no-upgrade'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.log = ''
    const keep = (s) => (this.log = (this.log + s).slice(-4000))
    this.child.stdout.setEncoding('utf8').on('data', keep)
    this.child.stderr.setEncoding('utf8').on('data', keep)
    this.exited = new Promise((resolve) => this.child.on('close', resolve))
    const deadline = performance.now() + 30_000
    for (;;) {
      try {
        await this.api('GET', '/rest/system/ping')
        return
      } catch (err) {
        if (this.child.exitCode !== null) throw new Error(`syncthing ${this.name} exited: ${this.log.trim().slice(-300)}`)
        if (performance.now() > deadline) throw new Error(`syncthing ${this.name} did not answer within 30 s: ${err.message}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }

  async api(method, path, body) {
    const res = await globalThis.fetch(`http://127.0.0.1:${this.guiPort}${path}`, {
      method,
      headers: { 'X-API-Key': this.apiKey, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`syncthing ${this.name} ${method} ${path}: ${res.status} ${text.slice(0, 200)}`)
    return text === '' ? undefined : JSON.parse(text)
  }

  /** Know another instance, by its loopback address only. */
  async addDevice(other) {
    await this.api('POST', '/rest/config/devices', { deviceID: other.id, name: other.name, addresses: [`tcp://127.0.0.1:${other.listenPort}`] })
  }

  /** Share `path` as folder `id` with `devices`; `watcherDelayS`: the watcher's delay (Syncthing's default is 10 s). */
  async addFolder(id, path, devices, { watcherDelayS = 10 } = {}) {
    await this.api('POST', '/rest/config/folders', {
      id,
      label: id,
      path,
      type: 'sendreceive',
      devices: [{ deviceID: this.id }, ...devices.map((d) => ({ deviceID: d.id }))],
      fsWatcherEnabled: true,
      fsWatcherDelayS: watcherDelayS,
      rescanIntervalS: 3600,
    })
  }

  async setWatcherDelay(folder, watcherDelayS) {
    await this.api('PATCH', `/rest/config/folders/${folder}`, { fsWatcherDelayS: watcherDelayS })
  }

  async connected(other) {
    const c = await this.api('GET', '/rest/system/connections')
    return c.connections?.[other.id]?.connected === true
  }

  /** Wait until the folder is idle with `files` files in its global state; returns the ms it took. */
  async waitIdle(folder, { files, timeoutMs = 120_000 } = {}) {
    const started = performance.now()
    for (;;) {
      const s = await this.api('GET', `/rest/db/status?folder=${folder}`)
      if (s.state === 'idle' && (files === undefined || s.globalFiles === files) && s.needFiles === 0) return performance.now() - started
      if (performance.now() - started > timeoutMs)
        throw new Error(`syncthing ${this.name}: folder ${folder} not idle within ${timeoutMs} ms: ${JSON.stringify(s)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  async pauseDevice(other) {
    await this.api('POST', `/rest/system/pause?device=${other.id}`)
  }

  async resumeDevice(other) {
    await this.api('POST', `/rest/system/resume?device=${other.id}`)
  }

  async memory() {
    return processMemory(this.child.pid)
  }

  async stop() {
    if (this.child === undefined || this.child.exitCode !== null) return
    this.child.kill('SIGTERM')
    try {
      await withTimeout(this.exited, 10_000, `syncthing ${this.name} did not stop within 10 s`)
    } catch {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }
}
