import { describe, expect, it } from 'vitest'
import { launchdLabel, launchdPlist, serviceName, servicePath, systemdQuote, systemdUnit, type ServiceSpec } from '../../src/cli/service-unit.js'

/** The content of the systemd unit and the launchd agent that `kitsync service install` writes. */
const DEFAULT_HOME = '/home/ann/.local/share/kitsync'

function spec(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    home: '/home/ann/work kitsync',
    node: '/opt/node-20/bin/node',
    cli: '/opt/kitsync/bin/kitsync.js',
    args: ['--listen', '/ip4/0.0.0.0/tcp/4772', '--no-mdns'],
    name: serviceName('/home/ann/work kitsync', DEFAULT_HOME),
    ...over,
  }
}

/** systemd's own reading of one ExecStart line: double-quoted words, `\\` escapes, `%%` and `$$` undoubled. */
function execStartWords(unit: string): string[] {
  const line = unit.split('\n').find((l) => l.startsWith('ExecStart='))
  if (line === undefined) throw new Error('no ExecStart')
  const words: string[] = []
  const re = /"((?:[^"\\]|\\.)*)"/g
  for (const m of line.slice('ExecStart='.length).matchAll(re)) {
    words.push((m[1] as string).replace(/\\(.)/g, '$1').replace(/%%/g, '%').replace(/\$\$/g, '$'))
  }
  return words
}

describe('service unit content', () => {
  it('names the default home kitsync and every other home apart, stably', () => {
    expect(serviceName(DEFAULT_HOME, DEFAULT_HOME)).toBe('kitsync')
    const a = serviceName('/home/ann/work', DEFAULT_HOME)
    const b = serviceName('/srv/other/work', DEFAULT_HOME)
    expect(a).toMatch(/^kitsync-work-[0-9a-f]{8}$/)
    expect(b).toMatch(/^kitsync-work-[0-9a-f]{8}$/)
    expect(a).not.toBe(b) // same folder name, two homes: two units
    expect(serviceName('/home/ann/work', DEFAULT_HOME)).toBe(a)
    expect(serviceName('/home/ann/we ird$%name', DEFAULT_HOME)).toMatch(/^kitsync-we-ird--name-[0-9a-f]{8}$/)
    expect(launchdLabel('kitsync')).toBe('dev.kitsync.peer')
    expect(launchdLabel(a)).toBe(`dev.kitsync.peer.${a.slice('kitsync-'.length)}`)
  })

  it('puts the unit under XDG_CONFIG_HOME (or ~/.config) and the agent under ~/Library/LaunchAgents', () => {
    expect(servicePath('systemd', 'kitsync', {}, '/home/ann')).toBe('/home/ann/.config/systemd/user/kitsync.service')
    expect(servicePath('systemd', 'kitsync', { XDG_CONFIG_HOME: '/cfg' }, '/home/ann')).toBe('/cfg/systemd/user/kitsync.service')
    // A relative XDG_CONFIG_HOME is invalid by the spec and ignored.
    expect(servicePath('systemd', 'kitsync', { XDG_CONFIG_HOME: 'cfg' }, '/home/ann')).toBe('/home/ann/.config/systemd/user/kitsync.service')
    expect(servicePath('launchd', 'kitsync', {}, '/Users/ann')).toBe('/Users/ann/Library/LaunchAgents/dev.kitsync.peer.plist')
  })

  it('systemd: ExecStart runs this node and CLI on the home in the foreground, restarts on failure, starts at login', () => {
    const unit = systemdUnit(spec())
    expect(execStartWords(unit)).toEqual([
      '/opt/node-20/bin/node',
      '/opt/kitsync/bin/kitsync.js',
      '--home',
      '/home/ann/work kitsync',
      'peer',
      'start',
      '--headless',
      '--listen',
      '/ip4/0.0.0.0/tcp/4772',
      '--no-mdns',
    ])
    expect(unit).not.toContain('--detach') // systemd supervises the process itself
    expect(unit).toMatch(/^Restart=on-failure$/m)
    expect(unit).toMatch(/^RestartSec=10$/m) // a peer started by hand holds the home: try again, slowly
    expect(unit).toMatch(/^WantedBy=default\.target$/m)
    expect(unit).toMatch(/^UMask=0077$/m)
    expect(unit).toMatch(/^\[Unit\]$/m)
    expect(unit).toMatch(/^\[Service\]$/m)
    expect(unit).toMatch(/^\[Install\]$/m)
  })

  it('systemd: quotes %, $, quotes and backslashes so a path stays itself', () => {
    expect(systemdQuote('/a b/%h/$HOME/"x"\\y')).toBe('"/a b/%%h/$$HOME/\\"x\\"\\\\y"')
    const odd = '/home/ann/100% "kit"$sync'
    expect(execStartWords(systemdUnit(spec({ home: odd })))[3]).toBe(odd)
  })

  it('holds no secret and nothing of the environment', () => {
    const before = process.env.KITSYNC_TEST_SECRET
    process.env.KITSYNC_TEST_SECRET = 'tok-s3cr3t'
    try {
      for (const text of [systemdUnit(spec()), launchdPlist(spec())]) {
        expect(text).not.toContain('tok-s3cr3t')
        expect(text).not.toMatch(/token|secret|identity\.key|keys\.json|Environment=/i)
        expect(text).not.toContain('PATH')
      }
    } finally {
      if (before === undefined) delete process.env.KITSYNC_TEST_SECRET
      else process.env.KITSYNC_TEST_SECRET = before
    }
  })

  it('launchd: RunAtLoad, KeepAlive on failure, the same command with a rotating log file in the home', () => {
    const s = spec({ home: '/Users/ann/a&b <kit>' })
    const plist = launchdPlist(s)
    expect(plist).toContain(`<key>Label</key>\n  <string>${launchdLabel(s.name)}</string>`)
    expect(plist).toContain('<key>RunAtLoad</key>\n  <true/>')
    expect(plist).toContain('<key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>')
    const args = [
      ...plist
        .split('<key>ProgramArguments</key>')[1]!
        .split('</array>')[0]!
        .matchAll(/<string>(.*)<\/string>/g),
    ].map((m) =>
      (m[1] as string)
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"')
        .replace(/&amp;/g, '&'),
    )
    expect(args).toEqual([
      '/opt/node-20/bin/node',
      '/opt/kitsync/bin/kitsync.js',
      '--home',
      '/Users/ann/a&b <kit>',
      'peer',
      'start',
      '--headless',
      '--listen',
      '/ip4/0.0.0.0/tcp/4772',
      '--no-mdns',
      '--log-file',
      '/Users/ann/a&b <kit>/peer.log',
    ])
    expect(plist).toContain('<key>StandardErrorPath</key>\n  <string>/Users/ann/a&amp;b &lt;kit&gt;/peer.log</string>')
    expect(plist).not.toMatch(/&(?!amp;|lt;|gt;|quot;)/) // every & escaped: the XML stays well-formed
  })
})
