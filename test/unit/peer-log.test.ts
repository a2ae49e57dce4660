import { closeSync, openSync, writeSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { headlessLog } from '../../src/cli/headless-log.js'
import { formatLogChunk, formatLogLine } from '../../src/cli/log-format.js'
import { RotatingLogFile } from '../../src/cli/rotating-log.js'
import { cleanup, makeTempDir } from '../helpers/cli.js'

afterEach(cleanup)

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777
const lines = async (path: string): Promise<string[]> => (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '')

describe('RotatingLogFile', () => {
  it('rotates at the size limit, keeps N files 0600, loses no line, and goes on writing the current file', async () => {
    const dir = await makeTempDir('ks-log-')
    const path = join(dir, 'peer.log')
    const log = new RotatingLogFile(path, { maxBytes: 1000, keep: 2 })
    const line = (i: number): string => `line ${String(i).padStart(4, '0')} ${'x'.repeat(89)}\n` // 100 bytes
    for (let i = 0; i < 10; i++) log.write(line(i))
    // Exactly at the limit: not rotated yet.
    expect((await stat(path)).size).toBe(1000)
    await expect(stat(`${path}.1`)).rejects.toThrow()
    log.write(line(10)) // would pass it: rotate first
    expect(await lines(`${path}.1`)).toEqual(Array.from({ length: 10 }, (_, i) => line(i).trimEnd()))
    expect(await lines(path)).toEqual([line(10).trimEnd()])
    for (let i = 11; i < 35; i++) log.write(line(i))
    log.close()
    // keep 2: peer.log.1 and peer.log.2 only; every line after the oldest kept one is in a file, in order.
    await expect(stat(`${path}.3`)).rejects.toThrow()
    const all = [...(await lines(`${path}.2`)), ...(await lines(`${path}.1`)), ...(await lines(path))]
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => line(35 - all.length + i).trimEnd()))
    expect(all.at(-1)).toBe(line(34).trimEnd())
    for (const p of [path, `${path}.1`, `${path}.2`]) {
      expect(await mode(p)).toBe(0o600)
      expect((await stat(p)).size).toBeLessThanOrEqual(1000)
    }
  })

  it('keeps another O_APPEND writer of the file (the peer stderr) on the current file after a rotation', async () => {
    const dir = await makeTempDir('ks-log-')
    const path = join(dir, 'peer.log')
    const stderr = openSync(path, 'a', 0o644)
    const log = new RotatingLogFile(path, { maxBytes: 1100, keep: 1 })
    expect(await mode(path)).toBe(0o600) // made private even when opened wider first
    const big = 'a'.repeat(1080)
    writeSync(stderr, 'kitsync: first stderr line\n') // 27 bytes
    log.write(big + '\n') // 1081 bytes: fits alone, not after the other writer's 27: rotates first
    writeSync(stderr, 'kitsync: second stderr line\n')
    expect(await lines(`${path}.1`)).toEqual(['kitsync: first stderr line'])
    expect(await lines(path)).toEqual([big, 'kitsync: second stderr line'])
    log.write('after\n')
    closeSync(stderr)
    log.close()
    expect(await lines(`${path}.1`)).toEqual([big, 'kitsync: second stderr line'])
    expect(await lines(path)).toEqual(['after'])
  })
})

describe('headless log levels', () => {
  it('hides debug lines at info, writes them at debug, and always writes started/stopped', async () => {
    const dir = await makeTempDir('ks-log-')
    const write = (file: string, level: 'warn' | 'info' | 'debug'): void => {
      const log = headlessLog({ level, file })
      log.knowDevices([])
      log.event('started', { listen: [] })
      log.event('change', { collection: 'notes', key: 'k' }, 'debug')
      log.debugSink('daemon:peer', 'a handled error', new Error('boom'))
      log.event('sync:connected', { peerId: 'P1' })
      log.event('pairing:refused', { deviceId: 'P2' }, 'warn')
      log.event('stopped', { signal: 'SIGTERM' })
      log.flush()
      log.close()
    }
    const events = async (file: string): Promise<string[]> => (await lines(file)).map((l) => (JSON.parse(l) as { event: string }).event)
    write(join(dir, 'info.log'), 'info')
    write(join(dir, 'debug.log'), 'debug')
    write(join(dir, 'warn.log'), 'warn')
    expect(await events(join(dir, 'info.log'))).toEqual(['started', 'sync:connected', 'pairing:refused', 'stopped'])
    expect(await events(join(dir, 'debug.log'))).toEqual(['started', 'change', 'debug', 'sync:connected', 'pairing:refused', 'stopped'])
    expect(await events(join(dir, 'warn.log'))).toEqual(['started', 'pairing:refused', 'stopped'])
    const debugLine = (await lines(join(dir, 'debug.log'))).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.event === 'debug')
    expect(debugLine).toMatchObject({ level: 20, scope: 'daemon:peer', msg: 'a handled error', error: 'boom' })
    expect(await mode(join(dir, 'info.log'))).toBe(0o600)
  })

  it('names a device beside its id, also in lines held until the names are known, and redacts a token', async () => {
    const dir = await makeTempDir('ks-log-')
    const file = join(dir, 'peer.log')
    const log = headlessLog({ file })
    log.event('sync:connected', { peerId: 'P0' })
    log.event('sync:connected', { peerId: 'P1' }) // before the names are known: held
    expect(await readFile(file, 'utf8')).toBe('')
    log.knowDevices([{ peerId: 'P1', name: 'laptop' }])
    log.event('device:joined', { peerId: 'P2', name: 'phone', by: 'P1' })
    log.event('sync:offline', { peerId: 'P2' })
    log.event('pairing:refused', { deviceId: 'P1', code: 'TOKEN_USED', token: 'tok-secret' }, 'warn')
    log.close()
    const entries = (await lines(file)).map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(entries.map((e) => e.device)).toEqual([undefined, 'laptop', undefined, 'phone', 'laptop'])
    expect(entries.map((e) => e.peerId ?? e.deviceId)).toEqual(['P0', 'P1', 'P2', 'P2', 'P1'])
    expect(entries[2]).toMatchObject({ name: 'phone', peerId: 'P2' })
    expect(entries[4]?.token).toBe('[redacted]')
  })
})

describe('peer logs format', () => {
  it('puts the time and level first, shows the fields, and leaves other lines as they are', () => {
    const raw = JSON.stringify({
      level: 30,
      time: '2026-12-07T13:40:28.123Z',
      pid: 7,
      event: 'sync:connected',
      device: 'laptop',
      peerId: 'P1',
      msg: 'sync:connected',
    })
    expect(formatLogLine(raw)).toBe('2026-12-07 13:40:28.123  INFO   sync:connected  device=laptop peerId=P1')
    const warn = JSON.stringify({ level: 40, time: '2026-12-07T13:40:29.000Z', pid: 7, event: 'pairing:refused', reason: 'a b', msg: 'pairing:refused' })
    expect(formatLogLine(warn)).toBe('2026-12-07 13:40:29.000  WARN   pairing:refused  reason="a b"')
    expect(formatLogLine('kitsync: PORT_IN_USE: /ip4/127.0.0.1/tcp/4771 is in use')).toBe('kitsync: PORT_IN_USE: /ip4/127.0.0.1/tcp/4771 is in use')
    expect(formatLogLine('{"level":30,"time":"2026-12-0')).toBe('{"level":30,"time":"2026-12-0')
  })

  it('carries a line cut between two reads to the next one', () => {
    const line = JSON.stringify({ level: 30, time: '2026-12-07T13:40:28.123Z', event: 'started', msg: 'started' })
    const first = formatLogChunk(line.slice(0, 20))
    expect(first).toEqual({ text: '', carry: line.slice(0, 20) })
    const second = formatLogChunk(line.slice(20) + '\n', first.carry)
    expect(second).toEqual({ text: '2026-12-07 13:40:28.123  INFO   started\n', carry: '' })
  })
})
