/**
 * Debug lines for errors the library handles by going on (an audit entry that could not be
 * written, a peer that hung up while its stream was closed, a key push to a peer that left):
 * each still says what failed and where, instead of vanishing in `.catch(() => undefined)`.
 *
 * core stays pure, so the lines go to a sink the process injects: a running peer
 * (daemon/peer.ts) installs net/debug-sink.ts, which writes them through @libp2p/logger as
 * `kitsync:<scope>`, shown with `DEBUG=kitsync:*` beside libp2p's own. With no sink they go
 * nowhere, and nothing is formatted.
 */
export type DebugSink = (scope: string, message: string, err?: unknown) => void

/** A scope's logger: `log('what failed, and for whom', err)`. */
export type DebugLog = (message: string, err?: unknown) => void

let sink: DebugSink | undefined

/** Install where debug lines go (undefined: nowhere). One sink per process. */
export function setDebugSink(next: DebugSink | undefined): void {
  sink = next
}

/** The logger of one scope, e.g. `daemon:peer`; it writes to whatever sink is installed when it is called. */
export function debugLog(scope: string): DebugLog {
  return (message, err) => sink?.(scope, message, err)
}
