import { anySignal } from '../core/abort.js'

/**
 * libp2p's own limits on a dial and on a stream's protocol negotiation (10 s each, its
 * defaults), which it applies only when the caller gives no signal of its own.
 */
export const LIBP2P_DIAL_TIMEOUT_MS = 10_000

/**
 * The signal to give a libp2p `dial` or `dialProtocol` for a caller's signal: undefined without
 * one (libp2p's own timeouts apply, as before), else the caller's signal bounded by libp2p's
 * timeout, which a signal of the caller's would otherwise replace.
 */
export function dialSignal(signal: AbortSignal | undefined): AbortSignal | undefined {
  if (signal === undefined) return undefined
  return anySignal(signal, AbortSignal.timeout(LIBP2P_DIAL_TIMEOUT_MS))
}
