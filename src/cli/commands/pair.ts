import { open, rename, rm } from 'node:fs/promises'
import type { Command } from 'commander'
import { ControlClient } from '../../api/control-client.js'
import { KitsyncError } from '../../core/errors.js'
import type { Invite, PendingJoin } from '../../daemon/invites.js'
import { countedDevices, deviceLimitOf, fullWarning } from '../../core/device-limit.js'
import type { DeviceRecord } from '../../core/workspace-types.js'
import { homePaths, readWorkspaceConfig, resolveHome } from '../../store/home.js'
import { example, globals, networkOptions, peerOptionsFrom, type CliIO, type NetworkFlags } from '../context.js'

export function register(program: Command, io: CliIO): void {
  example(
    networkOptions(
      program
        .command('pair')
        .description('show a one-time token (and QR code) that lets a new device join this workspace')
        .option('--ttl <minutes>', 'minutes until the token expires', '10')
        .option('--png <file>', 'also write the QR code as a PNG image (0600: it holds the token)')
        .option(
          '--qr <style>',
          'how to print the QR code: ansi (terminal colours), ascii (plain text, no escape codes) or none; default ansi on a terminal, else ascii',
        )
        .option('--confirm', 'approve the new device here after comparing the code both screens show')
        .option('--untrusted', 'a token for a storage/relay peer (a VPS): a member for transport that never receives the workspace keys or content'),
    ),
    'kitsync pair',
    'kitsync pair --json --ttl 5',
    'kitsync pair --untrusted --json     # then on the VPS: kitsync join TOKEN && kitsync peer start --headless --relay',
  ).action(async (options: NetworkFlags & { ttl: string; png?: string; qr?: string; confirm?: boolean; untrusted?: boolean }, cmd: Command) => {
    const opts = globals(cmd)
    const minutes = Number(options.ttl)
    if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 7 * 24 * 60)
      throw new KitsyncError('INVALID_ARGUMENT', '--ttl must be a number of minutes between 0 and 10080')
    const qr = options.qr ?? (io.stdoutIsTTY === true ? 'ansi' : 'ascii')
    if (!isQrStyle(qr)) throw new KitsyncError('INVALID_ARGUMENT', `--qr must be ansi, ascii or none, not '${qr}'`)
    const display = { json: opts.json === true, png: options.png, qr }
    const ttlMs = Math.round(minutes * 60_000)
    const home = resolveHome(opts.home, io.env)
    const client = await ControlClient.connect(homePaths(home).socket)
    if (client !== undefined) {
      // The running peer issues the token and admits the new device.
      try {
        const warning = await limitWarning(home, (await client.request('devices')) as DeviceRecord[])
        const invite = (await client.request('pair', { ttlMs, confirm: options.confirm === true, untrusted: options.untrusted === true })) as Invite
        await show(io, { ...display, warning }, invite)
        if (options.confirm === true) {
          const pending = new Promise<PendingJoin>((resolve, reject) => {
            client.onEvent((event, data) => {
              if (event === 'pairing:pending' && (data as PendingJoin).tokenId === invite.tokenId) resolve(data as PendingJoin)
              if (event === 'closed') reject(new KitsyncError('CONNECTION_CLOSED', 'the peer stopped'))
            })
          })
          await client.request('watch', { sync: true })
          const join = await pending
          const accept = await confirm(io, opts.json === true, join)
          await client.request('approve', { tokenId: invite.tokenId, accept })
          if (!accept) throw new KitsyncError('TOKEN_REFUSED', `${join.name} was not approved`)
        }
      } finally {
        client.close()
      }
      return
    }
    // No peer runs: run one here until the token is used, expires, or Ctrl-C.
    const peer = await (await import('../../daemon/peer.js')).Peer.start({ home, ...peerOptionsFrom(options) })
    try {
      const warning = await limitWarning(home, await peer.workspace.devices())
      const invite = await peer.createInvite(ttlMs, { confirm: options.confirm === true, untrusted: options.untrusted === true })
      await show(io, { ...display, warning }, invite)
      peer.invites.on('pending', (join) => {
        if (join.tokenId !== invite.tokenId) return
        void confirm(io, opts.json === true, join).then((accept) => peer.invites.approve(invite.tokenId, accept))
      })
      if (opts.json !== true) io.err('waiting for the new device to join (Ctrl-C to stop)...\n')
      const outcome = await new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve('expired'), invite.expiresAt - Date.now() + 1000)
        peer.invites.on('used', (e) => {
          if (e.tokenId !== invite.tokenId) return
          clearTimeout(timer)
          io.out(opts.json === true ? JSON.stringify({ event: 'device:joined', ...e }) + '\n' : `${e.name} (${e.deviceId}) joined\n`)
          // Stay a moment so the new device can copy the workspace before this peer goes.
          void peer.syncWith(e.deviceId, 60_000).then(
            () => resolve('joined'),
            () => resolve('joined'),
          )
        })
        void io.interrupted().then((s) => {
          clearTimeout(timer)
          resolve(s)
        })
      })
      if (outcome === 'expired') throw new KitsyncError('TOKEN_EXPIRED', 'the token expired before a device joined')
    } finally {
      await peer.stop()
    }
  })
}

/** Show who wants to join and the code its screen shows; the user says whether they match. */
async function confirm(io: CliIO, json: boolean, join: PendingJoin): Promise<boolean> {
  if (json) io.out(JSON.stringify({ event: 'pairing:pending', ...join }) + '\n')
  const answer = await io.prompt(`${join.name} (${join.peerId}) wants to join. Its screen shows a code: is it ${join.code}? Approve [y/N] `)
  return /^\s*y(es)?\s*$/i.test(answer)
}

type QrStyle = 'ansi' | 'ascii' | 'none'

function isQrStyle(style: string): style is QrStyle {
  return style === 'ansi' || style === 'ascii' || style === 'none'
}

/** The workspace is full: a join with a new token would be refused (`--json`: a `warning` field, else a line on stderr). */
async function limitWarning(home: string, devices: DeviceRecord[]): Promise<string | undefined> {
  return fullWarning(countedDevices(devices).length, deviceLimitOf(await readWorkspaceConfig(homePaths(home))))
}

async function show(io: CliIO, display: { json: boolean; png: string | undefined; qr: QrStyle; warning?: string | undefined }, invite: Invite): Promise<void> {
  const { default: QRCode } = await import('qrcode')
  const { json, png, warning } = display
  if (warning !== undefined && !json) io.err(`kitsync: warning: ${warning}\n`)
  if (png !== undefined) await writePrivateFile(png, await QRCode.toBuffer(invite.token, { type: 'png', errorCorrectionLevel: 'M' }))
  if (json) {
    io.out(
      JSON.stringify({
        token: invite.token,
        addresses: invite.addresses,
        expiresAt: new Date(invite.expiresAt).toISOString(),
        ...(png === undefined ? {} : { png }),
        ...(warning === undefined ? {} : { warning }),
      }) + '\n',
    )
    return
  }
  // 'terminal' colours the code with ANSI escapes; 'utf8' is the same blocks as plain text.
  const qr =
    display.qr === 'none'
      ? 'QR code not shown (--qr none).\n'
      : await QRCode.toString(
          invite.token,
          display.qr === 'ansi' ? { type: 'terminal', small: true, errorCorrectionLevel: 'M' } : { type: 'utf8', errorCorrectionLevel: 'M' },
        )
  io.out(
    `${qr}\nOn the new device run:\n\n  kitsync join ${invite.token}\n\nThe token works once and expires at ${new Date(invite.expiresAt).toLocaleTimeString()}.\n`,
  )
}

/**
 * Write a file that holds a secret (the PNG of a live token): 0600 whatever the process umask,
 * through a private temporary file renamed into place, so an older file's looser mode goes too.
 */
async function writePrivateFile(file: string, content: Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.chmod(0o600)
      await fh.writeFile(content)
    } finally {
      await fh.close()
    }
    await rename(tmp, file)
  } finally {
    await rm(tmp, { force: true })
  }
}
