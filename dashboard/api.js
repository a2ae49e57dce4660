// The dashboard's calls to the peer's HTTP API (docs/HTTP-API.md), from this origin with the
// browser session's cookie. Every call is a POST with the CSRF header the server asks of changes.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

export async function call(method, params = {}) {
  const res = await fetch(`/api/v1/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Kitsync-Csrf': '1' },
    body: JSON.stringify(params),
  })
  const body = await res.json().catch(() => ({}))
  if (!res.ok) throw new ApiError(res.status, body.error?.code ?? 'INTERNAL', body.error?.message ?? `HTTP ${res.status}`)
  return body.result
}

/** An object URL of the QR code of `text`, drawn by the peer as SVG (the text is a pairing token: POSTed, never in a URL). */
export async function qrImage(text) {
  const res = await fetch('/ui/qr.svg', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Kitsync-Csrf': '1' },
    body: JSON.stringify({ text }),
  })
  if (!res.ok) throw new ApiError(res.status, 'INTERNAL', `QR code: HTTP ${res.status}`)
  return URL.createObjectURL(await res.blob())
}

const EVENTS = [
  'change',
  'sync:connected',
  'sync:update',
  'sync:offline',
  'sync:conflict',
  'sync:progress',
  'sync:paused',
  'sync:resumed',
  'device:joined',
  'device:revoked',
  'device:revoked-self',
  'pairing:pending',
]

/**
 * The peer's event stream (change and sync events). EventSource reconnects by itself; `onState`
 * hears 'live' once the stream is open and 'offline' while it is not. Returns a function that closes it.
 */
export function subscribe(onEvent, onState) {
  const source = new EventSource('/api/v1/events?sync=true')
  source.addEventListener('watching', () => onState('live'))
  source.onerror = () => onState(source.readyState === EventSource.CLOSED ? 'closed' : 'offline')
  for (const name of EVENTS) source.addEventListener(name, (e) => onEvent(name, JSON.parse(e.data)))
  return () => source.close()
}
