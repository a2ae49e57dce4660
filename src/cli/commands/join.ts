import type { Command } from 'commander'
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ControlClient } from '../../api/control-client.js'
import { isKitsyncError, KitsyncError } from '../../core/errors.js'
import { decodeToken, TOKEN_FLAG_CONFIRM } from '../../protocol/pair-token.js'
import type { JoinResult } from '../../daemon/peer.js'
import { homePaths, readWorkspaceConfig, resolveHome, writeWorkspaceConfig } from '../../store/home.js'
import { assertPattern } from '../../core/selection.js'
import type { SyncProgressEvent } from '../../core/workspace-types.js'
import { ProgressBar } from '../progress-bar.js'
import { splitList } from './items.js'
import { example, globals, networkOptions, peerOptionsFrom, print, type CliIO, type NetworkFlags } from '../context.js'

interface JoinFlags extends NetworkFlags {
  name: string
  tokenFile?: string
  replace?: boolean
  items?: string[]
}

export function register(program: Command, io: CliIO): void {
  example(
    networkOptions(
      program
        .command('join')
        .description('join a workspace with a token from `kitsync pair` on one of its devices, and copy its data')
        .argument(
          '[token]',
          'the token shown by kitsync pair; - reads it from standard input (an argument is visible to every local user in the process list while join runs)',
        )
        .option('--token-file <file>', 'read the token from this file instead (keeps it out of the process list)')
        .option(
          '--replace',
          'if this home holds another workspace, write a backup export of it into the home folder (backup-TIME.json, 0600) and join in its place',
        )
        .option('--name <device>', 'name of this device as the others will see it', hostname())
        .option(
          '--items <names>',
          'sync only these collections, from the first copy on (names or patterns as kitsync items takes them, comma-separated, repeatable); the others are never copied here',
          collectItems,
        ),
    ),
    'kitsync join - --name laptop < token.txt      # token on standard input',
    'kitsync join --token-file token.txt',
    'kitsync join ks1AbC... --name laptop',
    "kitsync join --token-file token.txt --items 'alerts*,watchlists'   # copy only these collections",
  ).action(async (tokenArg: string | undefined, options: JoinFlags, cmd: Command) => {
    const opts = globals(cmd)
    const token = await readToken(io, tokenArg, options.tokenFile)
    const decoded = decodeToken(token) // refuse a damaged token before touching anything
    const items = options.items === undefined ? undefined : splitList(options.items)
    for (const p of items ?? []) assertPattern(p) // refuse a bad pattern before touching anything
    // With a --confirm token the inviter's person compares this code with the one on their screen.
    const showCode = (decoded.flags & TOKEN_FLAG_CONFIRM) !== 0
    const home = resolveHome(opts.home, io.env)
    const client = await ControlClient.connect(homePaths(home).socket)
    // The copy on a terminal: a progress bar on stderr (events at most every 200 ms).
    const bar = opts.json !== true && io.stderrIsTTY === true ? new ProgressBar(io.err, 'copying') : undefined
    let result: JoinResult & { backup?: string }
    if (client !== undefined) {
      try {
        if (options.replace === true) {
          throw new KitsyncError(
            'PEER_ALREADY_RUNNING',
            `join --replace replaces the store of ${home}, which its running peer holds: stop the peer first, then run join --replace again`,
          )
        }
        // The selection first: the first exchange with the inviter then asks only for these.
        if (items !== undefined) await client.request('setItems', { items: { set: items } })
        if (bar !== undefined) {
          client.onEvent((event, data) => {
            if (event === 'sync:progress') bar.update(data as SyncProgressEvent)
          })
          await client.request('watch', { sync: true, changes: false })
        }
        result = (await client.request('join', { token, name: options.name })) as JoinResult
        // (through a running peer the confirmation code is in its output: kitsync peer start)
      } finally {
        bar?.end()
        client.close()
      }
    } else {
      result = await joinHere(
        home,
        token,
        decoded.workspaceId,
        options,
        showCode ? (code) => io.err(`confirmation code: ${code} (the inviting device shows the same code; approve it there)\n`) : undefined,
        bar,
      ).finally(() => bar?.end())
    }
    // The addresses of this join are the peer's from now on (two devices on one machine need two ports).
    if (options.listen !== undefined) await rememberListen(home, options.listen)
    print(
      io,
      opts,
      result,
      () =>
        `${result.backup === undefined ? '' : `the workspace this home held was exported to ${result.backup} (0600)\n`}joined workspace ${result.name} (${result.workspaceId})\n${result.caughtUp ? 'copied the workspace from the inviting device' : 'the copy did not finish; it continues when the peer runs (kitsync peer start)'}\n`,
    )
  })
}

const collectItems = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** Keep `join --listen` in workspace.json: `peer start` without --listen listens there. */
async function rememberListen(home: string, listen: string[]): Promise<void> {
  const paths = homePaths(home)
  const config = await readWorkspaceConfig(paths)
  if (config !== undefined) await writeWorkspaceConfig(paths, { ...config, listen })
}

/** The token from the argument, standard input (`-`) or --token-file: exactly one of them. */
async function readToken(io: CliIO, arg: string | undefined, file: string | undefined): Promise<string> {
  if (arg !== undefined && file !== undefined)
    throw new KitsyncError('INVALID_ARGUMENT', 'give the token once: as an argument, as - (standard input) or with --token-file')
  let text: string
  if (file !== undefined) {
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      throw new KitsyncError('INVALID_ARGUMENT', `cannot read --token-file ${file}: ${(err as Error).message}`, { cause: err })
    }
  } else if (arg === '-') {
    text = await io.readStdin()
  } else if (arg === undefined) {
    throw new KitsyncError('INVALID_ARGUMENT', 'missing token: kitsync join TOKEN, kitsync join - (token on standard input) or kitsync join --token-file FILE')
  } else {
    text = arg
  }
  return text.trim()
}

/**
 * No peer runs here: run one just for the join (any free port), copy the workspace, stop. A
 * join that fails takes away what it made: a home that did not exist is removed, and one that
 * did keeps only the entries it had (and with --replace gets its old workspace back).
 */
async function joinHere(
  home: string,
  token: string,
  workspaceId: string,
  options: JoinFlags,
  onCode: ((code: string) => void) | undefined,
  bar: ProgressBar | undefined,
): Promise<JoinResult & { backup?: string }> {
  const before = await entriesOf(home)
  // Refused before any peer starts here; Peer.join checks again (and alone, through a running peer).
  const replaced = await existingWorkspace(home, workspaceId, options.replace === true)
  let started = false
  let result: JoinResult
  try {
    const peer = await (
      await import('../../daemon/peer.js')
    ).Peer.start({
      home,
      control: false,
      ...peerOptionsFrom({ listen: ['/ip4/0.0.0.0/tcp/0'], ...options }),
      // Set before the network starts, so the first sync session asks only for these.
      ...(options.items === undefined ? {} : { items: splitList(options.items) }),
      ...(bar === undefined ? {} : { listeners: { 'sync:progress': (e: SyncProgressEvent) => bar.update(e) } }),
    })
    started = true
    try {
      result = await peer.join(token, options.name, onCode === undefined ? {} : { onCode })
    } finally {
      await peer.stop()
    }
  } catch (err) {
    // A store held by another process is that process's: nothing here was made by this join
    // (but a workspace this join set aside goes back in any case).
    const locked = isKitsyncError(err, 'STORE_LOCKED') || isKitsyncError(err, 'PEER_ALREADY_RUNNING')
    if (started || !locked || replaced !== undefined) await undo(home, before, replaced)
    throw err
  }
  if (replaced === undefined) return result
  await rm(replaced.aside, { recursive: true, force: true })
  return { ...result, backup: replaced.backup }
}

/** Names in the home folder, or undefined when it does not exist. */
async function entriesOf(home: string): Promise<string[] | undefined> {
  try {
    return await readdir(home)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Remove what a failed join made in the home; put a workspace set aside by --replace back. */
async function undo(home: string, before: string[] | undefined, replaced: { aside: string; backup: string; moved: string[] } | undefined): Promise<void> {
  if (before === undefined) {
    await rm(home, { recursive: true, force: true })
    return
  }
  const keep = new Set([...before, ...(replaced === undefined ? [] : [replaced.aside, replaced.backup].map((p) => p.slice(home.length + 1)))])
  for (const name of (await entriesOf(home)) ?? []) {
    if (!keep.has(name) || replaced?.moved.includes(name) === true) await rm(join(home, name), { recursive: true, force: true })
  }
  if (replaced === undefined) return
  for (const name of replaced.moved) await rename(join(replaced.aside, name), join(home, name))
  await rmdir(replaced.aside).catch(() => undefined) // not empty: what is left stays there to look at
}

/**
 * If the home holds data of a workspace other than the token's (see heldData): without
 * --replace, WORKSPACE_EXISTS. With it, export the workspace to `backup-TIME.json` (0600) in
 * the home and move its files into a private folder, to be removed once the join succeeded
 * (or moved back if it fails). The device gets a new identity too: the old workspace's members
 * trusted the old one.
 */
async function existingWorkspace(home: string, workspaceId: string, replace: boolean): Promise<{ aside: string; backup: string; moved: string[] } | undefined> {
  const paths = homePaths(home)
  const config = await readWorkspaceConfig(paths).catch(() => undefined) // unreadable: Peer.start says why
  if (config === undefined || config.id === workspaceId) return undefined
  const { LocalWorkspace } = await import('../../daemon/local-workspace.js')
  const { heldData, workspaceExists } = await import('../../daemon/held-data.js')
  const ws = await LocalWorkspace.open({ home })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const backup = join(home, `backup-${stamp}.json`)
  try {
    const info = await ws.info()
    const held = await heldData(ws, info.deviceId)
    if (held.records === 0 && held.devices === 0) return undefined
    if (!replace) throw workspaceExists(home, info, held)
    const data = await ws.export()
    if (data.unreadable.length > 0) {
      throw new KitsyncError(
        'DATA_CORRUPTION',
        `cannot back up the workspace of ${home}: ${data.unreadable.map((u) => u.collection).join(', ')} cannot be read; nothing was changed (join from a fresh home folder with --home instead)`,
      )
    }
    const tmp = `${backup}.${process.pid}.tmp`
    try {
      await writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600, flush: true })
      await rename(tmp, backup)
    } catch (err) {
      await rm(tmp, { force: true })
      throw new KitsyncError('STORAGE_FAILED', `cannot write the backup ${backup}: ${(err as Error).message}; nothing was changed`, { cause: err })
    }
  } finally {
    await ws.close()
  }
  const aside = join(home, `.replaced-${stamp}`)
  await mkdir(aside, { mode: 0o700 })
  const moved: string[] = []
  for (const name of (await entriesOf(home)) ?? []) {
    // Backups, and a workspace set aside by an earlier --replace that did not finish, stay.
    if (name.startsWith('backup-') || name.startsWith('.replaced-')) continue
    await rename(join(home, name), join(aside, name))
    moved.push(name)
  }
  return { aside, backup, moved }
}
