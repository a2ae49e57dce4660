import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { KitsyncError } from '../core/errors.js'
import { encodeFrame, OLD_SYNC_REFUSAL, SYNC_PROTOCOL_ID } from '../protocol/sync-frames.js'

/**
 * Sync protocol versions between devices of different kitsync versions (docs/PROTOCOL.md,
 * "Versions"): an old device that dials this one is told why it is refused, and a dial of a
 * device that does not speak this version fails with VERSION_MISMATCH naming it.
 */

/** How long an old device gets to read the refusal before the stream is reset. */
const REFUSAL_TIMEOUT_MS = 5000

/**
 * The handler of an earlier sync protocol id: one ERROR frame VERSION_MISMATCH, then the
 * stream closes. Only members are told (a stranger gets nothing, as on the current protocol).
 */
export async function refuseOldSync(stream: Stream, connection: Connection, isMember: (id: string) => Promise<boolean>): Promise<void> {
  if (!(await isMember(connection.remotePeer.toString()).catch(() => false))) {
    stream.abort(new Error('not a member'))
    return
  }
  try {
    const signal = AbortSignal.timeout(REFUSAL_TIMEOUT_MS)
    await lpStream(stream).write(encodeFrame(OLD_SYNC_REFUSAL), { signal })
    await stream.close({ signal })
  } catch (err) {
    stream.abort(err as Error)
  }
}

/** A failed dial of the sync protocol, as the error to report: a peer without this version is a VERSION_MISMATCH naming it. */
export function syncDialError(err: unknown, peerId: string): unknown {
  if ((err as Error | undefined)?.name !== 'UnsupportedProtocolError') return err
  return new KitsyncError('VERSION_MISMATCH', `peer ${peerId} does not speak ${SYNC_PROTOCOL_ID}: it runs an older kitsync; update kitsync on it`, {
    details: { peer: peerId },
    cause: err,
  })
}
